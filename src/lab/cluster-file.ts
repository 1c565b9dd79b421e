import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { NETNS_ANNOTATION, CGROUP_ANNOTATION } from '../discovery/pod-locator'
import { ferryError } from '../errors'
import { withFileLock } from './file-lock'
import type { LabContainer, LabNamespace, LabPod, LabProbe, LabService, LabSpec, ProbeKind } from './manifest/spec'
import { pendingPod, podStatus } from './pod-status'
import { netnsPath, type LabPlan, type PlanPod, type PlanService } from './topology'

// The lab's stand-in for the API server: one Kubernetes `v1 List` (JSON) of the
// Namespaces, Nodes, Pods and Services, as a real cluster would return them — uids,
// pod IPs, host IPs, cluster IPs and the probes' defaults filled in. Each agent reads it
// with the file discovery source. Pods carry two lab annotations telling where they live
// on the node (see src/discovery/pod-locator.ts), and the status their node's kubelet
// publishes (src/lab/pod-status.ts; Pending with its containers being created when the
// lab accepts a pod).
//
// Several processes write it (`up`, `apply`, `delete` and each node's kubelet): every
// change is a read-modify-write under a lock (src/lab/file-lock.ts) that bumps the
// List's resourceVersion, and the file is replaced atomically (write + rename), so a
// reader sees the old or the new list, never half of one.

export interface ClusterList {
  apiVersion: 'v1'
  kind: 'List'
  metadata: { resourceVersion: string }
  items: Array<Record<string, any>>
}

export function clusterList (spec: LabSpec, plan: LabPlan, generation: number, now: string = new Date().toISOString()): ClusterList {
  const items: Array<Record<string, any>> = []
  for (const ns of spec.namespaces) items.push(namespaceItem(ns))
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
  spec.pods.forEach((pod, i) => { items.push(podItem(plan, pod, plan.pods[i], now)) })
  spec.services.forEach((svc, i) => { items.push(serviceItem(svc, plan.services[i])) })
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(generation) }, items }
}

export function namespaceItem (ns: LabNamespace): Record<string, any> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: { 'kubernetes.io/metadata.name': ns.name, ...ns.labels }, annotations: { ...ns.annotations } }, status: { phase: 'Active' } }
}

/** A Pod as the API server holds it once the lab accepted it: bound to its node, its containers being created. */
export function podItem (plan: LabPlan, pod: LabPod, p: PlanPod, now: string): Record<string, any> {
  const node = plan.nodes.find((n) => n.name === p.node)
  const hostIPs = node === undefined ? [] : [node.ipv4, node.ipv6]
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      uid: p.uid,
      creationTimestamp: now,
      labels: { ...pod.labels },
      annotations: podAnnotations(plan, pod, p),
      ...(pod.ownerReferences.length > 0 ? { ownerReferences: pod.ownerReferences } : {})
    },
    spec: {
      nodeName: pod.nodeName,
      serviceAccountName: pod.serviceAccountName,
      hostname: pod.hostname,
      restartPolicy: pod.restartPolicy ?? 'Always',
      terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
      containers: pod.containers.map(containerItem)
    },
    status: podStatus(pendingPod(pod.containers.map((c) => c.name), now, [p.ipv4, p.ipv6], hostIPs), null, now)
  }
}

/** A pod's annotations as published: the manifest's, and the lab's two saying where the pod lives on its node. */
export function podAnnotations (plan: Pick<LabPlan, 'paths'>, pod: Pick<LabPod, 'annotations'>, p: Pick<PlanPod, 'netns' | 'cgroup'>): Record<string, string> {
  return { ...pod.annotations, [NETNS_ANNOTATION]: netnsPath(plan.paths, p.netns), [CGROUP_ANNOTATION]: p.cgroup }
}

const PROBE_FIELDS: Readonly<Record<ProbeKind, string>> = { startup: 'startupProbe', liveness: 'livenessProbe', readiness: 'readinessProbe' }

function containerItem (c: LabContainer): Record<string, any> {
  const probes: Record<string, object> = {}
  for (const [kind, probe] of Object.entries(c.probes ?? {}) as Array<[ProbeKind, LabProbe]>) probes[PROBE_FIELDS[kind]] = probeItem(probe)
  return {
    name: c.name,
    command: c.command,
    args: c.args,
    ports: c.ports.map((port) => ({ ...(port.name === undefined ? {} : { name: port.name }), containerPort: port.containerPort, protocol: 'TCP' })),
    ...probes
  }
}

/** A probe as the API server returns it: the manifest's handler with its defaults (scheme, thresholds) filled in. */
export function probeItem (p: LabProbe): Record<string, any> {
  const h = p.handler
  const handler = h.kind === 'httpGet'
    ? { httpGet: { path: h.path, port: h.port, ...(h.host === null ? {} : { host: h.host }), scheme: h.scheme, ...(h.headers.length === 0 ? {} : { httpHeaders: h.headers }) } }
    : h.kind === 'tcpSocket'
      ? { tcpSocket: { port: h.port, ...(h.host === null ? {} : { host: h.host }) } }
      : h.kind === 'grpc'
        ? { grpc: { port: h.port, ...(h.service === null ? {} : { service: h.service }) } }
        : { exec: { command: h.command } }
  return {
    ...handler,
    ...(p.initialDelaySeconds > 0 ? { initialDelaySeconds: p.initialDelaySeconds } : {}),
    timeoutSeconds: p.timeoutSeconds,
    periodSeconds: p.periodSeconds,
    successThreshold: p.successThreshold,
    failureThreshold: p.failureThreshold,
    ...(p.terminationGracePeriodSeconds === null ? {} : { terminationGracePeriodSeconds: p.terminationGracePeriodSeconds })
  }
}

export function serviceItem (svc: LabService, p: PlanService): Record<string, any> {
  return {
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
  }
}

/** Writes the file so that a reader sees the old or the new list, never half of one. */
export function writeClusterFile (path: string, list: object): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify(list, null, 2) + '\n', { mode: 0o644 })
  renameSync(tmp, path)
}

export function readClusterFile (path: string): ClusterList {
  let list: ClusterList
  try {
    list = JSON.parse(readFileSync(path, 'utf8')) as ClusterList
  } catch (e) {
    throw ferryError('FERRY_ERR_LAB', `cannot read the lab's cluster file ${path}: ${(e as Error).message}`, { cause: e })
  }
  if (list?.kind !== 'List' || !Array.isArray(list.items)) throw ferryError('FERRY_ERR_LAB', `${path} is not a v1 List`)
  return list
}

/**
 * Read-modify-write under the file's lock: `edit` changes the list in place and says
 * whether it changed anything; only then is the file rewritten, with the next
 * resourceVersion. Returns the resourceVersion the file has afterwards.
 */
export async function updateClusterFile (path: string, edit: (list: ClusterList) => boolean): Promise<number> {
  return await withFileLock(path, () => {
    const list = readClusterFile(path)
    const rv = Number(list.metadata?.resourceVersion ?? '0')
    if (!edit(list)) return rv
    list.metadata = { ...list.metadata, resourceVersion: String(rv + 1) }
    writeClusterFile(path, list)
    return rv + 1
  })
}

/** Items of a kind with that namespace and name. */
export function isItem (o: Record<string, any>, kind: string, namespace: string | undefined, name: string): boolean {
  return o.kind === kind && o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace)
}
