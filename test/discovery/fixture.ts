// Builders for Kubernetes `v1 List` documents, shared by the discovery, proxy and
// agent tests. They produce the raw JSON the lab writes, so every test goes through
// the real parser.

export interface PodSpecLite {
  name: string
  namespace?: string
  uid?: string
  node?: string
  ips?: string[]
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ports?: Array<{ name?: string, containerPort: number, protocol?: string }>
  phase?: string
  serviceAccountName?: string
  /** status.conditions' Ready: true/false writes the condition; absent writes no conditions at all. */
  ready?: boolean
  /** Probes of the container, as in a pod spec (readinessProbe, livenessProbe, startupProbe). */
  probes?: Record<string, unknown>
  /** metadata.deletionTimestamp: the pod is terminating. */
  deletionTimestamp?: string
  /** The Deployment that runs the pod (through a ReplicaSet: its owner reference and pod-template-hash label), which names its workload. */
  deployment?: string
}

const TEMPLATE_HASH = '5d8f7c9b6d'

export function podObj (p: PodSpecLite): Record<string, unknown> {
  const ns = p.namespace ?? 'app'
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: ns,
      uid: p.uid ?? `uid-${ns}-${p.name}`,
      labels: { ...(p.labels ?? { app: p.name }), ...(p.deployment === undefined ? {} : { 'pod-template-hash': TEMPLATE_HASH }) },
      annotations: p.annotations ?? {},
      ...(p.deployment === undefined ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${p.deployment}-${TEMPLATE_HASH}`, uid: `uid-rs-${p.deployment}`, controller: true }] }),
      ...(p.deletionTimestamp === undefined ? {} : { deletionTimestamp: p.deletionTimestamp })
    },
    spec: {
      nodeName: p.node ?? 'n1',
      serviceAccountName: p.serviceAccountName ?? p.name,
      containers: [{ name: 'main', image: 'x', ports: p.ports ?? [], ...p.probes }]
    },
    status: {
      phase: p.phase ?? 'Running',
      ...(p.ips === undefined ? {} : { podIP: p.ips[0], podIPs: p.ips.map((ip) => ({ ip })) }),
      ...(p.ready === undefined ? {} : { conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: p.ready ? 'True' : 'False' }] })
    }
  }
}

export function serviceObj (s: { name: string, namespace?: string, annotations?: Record<string, string>, clusterIPs: string[], selector?: Record<string, string> | null, ports: Array<{ name?: string, port: number, targetPort?: number | string, protocol?: string, appProtocol?: string }>, publishNotReadyAddresses?: boolean }): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace ?? 'app', ...(s.annotations === undefined ? {} : { annotations: s.annotations }) },
    spec: {
      clusterIP: s.clusterIPs[0],
      clusterIPs: s.clusterIPs,
      ...(s.selector === null ? {} : { selector: s.selector ?? { app: s.name } }),
      ports: s.ports,
      ...(s.publishNotReadyAddresses === undefined ? {} : { publishNotReadyAddresses: s.publishNotReadyAddresses })
    }
  }
}

export function namespaceObj (name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }
}

export function nodeObj (name: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name } }
}

export function list (items: Array<Record<string, unknown>>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'List', items }
}

export function listText (items: Array<Record<string, unknown>>): string {
  return JSON.stringify(list(items), null, 2)
}

/** A small meshed cluster: client, two servers behind a dual-stack Service with a named targetPort. */
export function sampleCluster (): Array<Record<string, unknown>> {
  return [
    nodeObj('n1'),
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5', 'fd00:244::5'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['10.244.0.10', 'fd00:244::a'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: 8080 }] }),
    podObj({ name: 'server-b', ips: ['10.244.0.11', 'fd00:244::b'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: 9090 }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10', 'fd00:96::a'], selector: { app: 'server' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] })
  ]
}
