import { renameSync, writeFileSync } from 'node:fs'
import { NETNS_ANNOTATION, CGROUP_ANNOTATION } from '../discovery/pod-locator'
import type { LabSpec } from './manifest/spec'
import { netnsPath, type LabPlan } from './topology'

// The lab's stand-in for the API server: one Kubernetes `v1 List` (JSON) of the
// Namespaces, Nodes, Pods and Services, as a real cluster would return them — uids,
// pod IPs, host IPs and cluster IPs filled in. Each agent reads it with the file
// discovery source. Pods carry two lab annotations telling where they live on the node
// (see src/discovery/pod-locator.ts). The file is replaced atomically (write + rename),
// and its resourceVersion grows with each rewrite.

export function clusterList (spec: LabSpec, plan: LabPlan, generation: number): object {
  const items: object[] = []
  for (const ns of spec.namespaces) {
    items.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: { 'kubernetes.io/metadata.name': ns.name, ...ns.labels }, annotations: { ...ns.annotations } }, status: { phase: 'Active' } })
  }
  spec.nodes.forEach((n, i) => {
    const p = plan.nodes[i]
    items.push({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, ...n.labels }, annotations: { ...n.annotations } },
      spec: { podCIDR: p.podCIDRv4, podCIDRs: [p.podCIDRv4, p.podCIDRv6] },
      status: {
        addresses: [{ type: 'InternalIP', address: p.ipv4 }, { type: 'InternalIP', address: p.ipv6 }, { type: 'Hostname', address: n.name }],
        conditions: [{ type: 'Ready', status: 'True' }]
      }
    })
  })
  spec.pods.forEach((pod, i) => {
    const p = plan.pods[i]
    const node = plan.nodes.find((n) => n.name === p.node)
    items.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: pod.namespace,
        uid: p.uid,
        labels: { ...pod.labels },
        annotations: { ...pod.annotations, [NETNS_ANNOTATION]: netnsPath(plan.paths, p.netns), [CGROUP_ANNOTATION]: p.cgroup },
        ...(pod.ownerReferences.length > 0 ? { ownerReferences: pod.ownerReferences } : {})
      },
      spec: {
        nodeName: pod.nodeName,
        serviceAccountName: pod.serviceAccountName,
        hostname: pod.hostname,
        containers: pod.containers.map((c) => ({
          name: c.name,
          command: c.command,
          args: c.args,
          ports: c.ports.map((port) => ({ ...(port.name === undefined ? {} : { name: port.name }), containerPort: port.containerPort, protocol: 'TCP' }))
        }))
      },
      status: {
        phase: 'Running',
        podIP: p.ipv4,
        podIPs: [{ ip: p.ipv4 }, { ip: p.ipv6 }],
        hostIP: node?.ipv4,
        hostIPs: node === undefined ? [] : [{ ip: node.ipv4 }, { ip: node.ipv6 }]
      }
    })
  })
  spec.services.forEach((svc, i) => {
    const p = plan.services[i]
    items.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: svc.name, namespace: svc.namespace, labels: { ...svc.labels }, annotations: { ...svc.annotations } },
      spec: {
        type: 'ClusterIP',
        selector: { ...svc.selector },
        ports: svc.ports.map((port) => ({
          ...(port.name === undefined ? {} : { name: port.name }),
          port: port.port,
          targetPort: port.targetPort,
          protocol: 'TCP',
          ...(port.appProtocol === undefined ? {} : { appProtocol: port.appProtocol })
        })),
        clusterIP: svc.headless ? 'None' : p.clusterIPs[0],
        clusterIPs: svc.headless ? ['None'] : [...p.clusterIPs],
        ipFamilies: [...svc.ipFamilies],
        ipFamilyPolicy: svc.ipFamilyPolicy
      }
    })
  })
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(generation) }, items }
}

/** Writes the file so that a reader sees the old or the new list, never half of one. */
export function writeClusterFile (path: string, list: object): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify(list, null, 2) + '\n', { mode: 0o644 })
  renameSync(tmp, path)
}
