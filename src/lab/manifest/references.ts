import { MAX_NODES, MAX_PODS_PER_NODE } from '../ipam'
import type { ManifestIssue } from './issues'
import { DEFAULT_NAMESPACE, type LabNamespace, type LabNode, type LabPod, type LabService, type Origin } from './spec'

// Checks that need more than one object: duplicates, references to nodes and
// namespaces, addresses asked for twice, and the lab's size limits.

export interface Collected {
  nodes: LabNode[]
  namespaces: LabNamespace[]
  pods: LabPod[]
  services: LabService[]
}

export function crossCheck (c: Collected, issue: (origin: Origin, object: string, path: Array<string | number>, message: string) => ManifestIssue): ManifestIssue[] {
  const issues: ManifestIssue[] = []
  const nodes = new Set(c.nodes.map((n) => n.name))
  const namespaces = new Set([DEFAULT_NAMESPACE, ...c.namespaces.map((n) => n.name)])

  for (const pod of c.pods) {
    const what = `Pod ${pod.namespace}/${pod.name}`
    if (pod.nodeName !== '' && !nodes.has(pod.nodeName)) {
      const known = c.nodes.length === 0 ? 'no Node is declared' : `Nodes: ${[...nodes].join(', ')}`
      issues.push(issue(pod.origin, what, ['spec', 'nodeName'], `no Node "${pod.nodeName}" in the manifests (${known})`))
    }
    if (!namespaces.has(pod.namespace)) issues.push(issue(pod.origin, what, ['metadata', 'namespace'], `no Namespace "${pod.namespace}" in the manifests`))
  }
  for (const svc of c.services) {
    if (!namespaces.has(svc.namespace)) issues.push(issue(svc.origin, `Service ${svc.namespace}/${svc.name}`, ['metadata', 'namespace'], `no Namespace "${svc.namespace}" in the manifests`))
  }

  const ipOwner = new Map<string, string>()
  for (const svc of c.services) {
    for (const ip of Object.values(svc.requestedClusterIPs)) {
      const what = `Service ${svc.namespace}/${svc.name}`
      const prior = ipOwner.get(ip)
      if (prior !== undefined) issues.push(issue(svc.origin, what, ['spec', 'clusterIPs'], `${ip} is already the cluster IP of ${prior}`))
      else ipOwner.set(ip, what)
    }
  }

  if (c.nodes.length > MAX_NODES) {
    issues.push(issue(c.nodes[MAX_NODES].origin, `Node ${c.nodes[MAX_NODES].name}`, [], `the lab has room for ${MAX_NODES} nodes`))
  }
  const perNode = new Map<string, number>()
  for (const pod of c.pods) {
    const n = (perNode.get(pod.nodeName) ?? 0) + 1
    perNode.set(pod.nodeName, n)
    if (n === MAX_PODS_PER_NODE + 1) issues.push(issue(pod.origin, `Pod ${pod.namespace}/${pod.name}`, ['spec', 'nodeName'], `node ${pod.nodeName} has room for ${MAX_PODS_PER_NODE} pods`))
  }
  return issues
}

/** Key of an object for duplicate detection. */
export function objectKey (kind: string, namespace: string | undefined, name: string): string {
  return namespace === undefined ? `${kind} ${name}` : `${kind} ${namespace}/${name}`
}
