import type { Family } from './ip'

// The cluster as Ferry sees it: the few fields of Kubernetes objects the mesh needs,
// validated and deeply frozen. Every DiscoverySource produces these.

export type Protocol = 'TCP' | 'UDP' | 'SCTP'

export interface ContainerPort {
  readonly name: string | null
  readonly containerPort: number
  readonly protocol: Protocol
}

export interface Pod {
  readonly uid: string
  readonly name: string
  readonly namespace: string
  readonly nodeName: string | null
  readonly serviceAccountName: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  /** Canonical IPs, at most one per family in practice, in status order. */
  readonly podIPs: readonly string[]
  /** Canonical IPs of the node the pod runs on (status.hostIPs, else status.hostIP), primary first; empty until scheduled. */
  readonly hostIPs: readonly string[]
  /** Named and numbered ports of all containers. */
  readonly ports: readonly ContainerPort[]
  /**
   * Ports the kubelet probes (readiness, liveness and startup probes of every container
   * and sidecar: httpGet, tcpSocket and grpc; named ports resolved against the
   * container's own ports as the kubelet does), sorted. Exec probes name none.
   */
  readonly probePorts: readonly number[]
  /**
   * Whether the pod may be a Service endpoint, as EndpointSlices' `ready` condition:
   * its `Ready` condition is True and it is not terminating (no deletionTimestamp).
   * A pod with no status.conditions at all (a hand-written cluster file) is ready.
   */
  readonly ready: boolean
  readonly phase: string | null
  readonly hostNetwork: boolean
  /** Istio's workload name: the controller owner's (a ReplicaSet's Deployment, a Job's CronJob), else the pod's (workload-name.ts). */
  readonly workload: string
}

export interface ServicePort {
  readonly name: string | null
  readonly port: number
  /** A container port number, or the name of a container port. */
  readonly targetPort: number | string
  readonly protocol: Protocol
  /**
   * spec.ports[].appProtocol as written (`http`, `kubernetes.io/h2c`, `grpc`, …), or null.
   * With Istio's port-name prefixes it declares the port's protocol (src/l7/protocol.ts).
   */
  readonly appProtocol: string | null
}

export interface Service {
  readonly name: string
  readonly namespace: string
  /** metadata.annotations (e.g. ferry.dev/l7: src/l7/switch.ts). */
  readonly annotations: Readonly<Record<string, string>>
  /** Canonical cluster IPs (empty for headless services). */
  readonly clusterIPs: readonly string[]
  readonly ports: readonly ServicePort[]
  /** null: no selector (endpoints managed elsewhere, which Ferry does not read yet). */
  readonly selector: Readonly<Record<string, string>> | null
  /** spec.publishNotReadyAddresses: pods that are not ready are endpoints too. */
  readonly publishNotReadyAddresses: boolean
}

/**
 * Ferry's namespace-wide switches (ferry.dev/mesh, ferry.dev/inbound-mode, ferry.dev/l7)
 * are labels, its per-object ones annotations (of pods and services): namespace
 * annotations are not read.
 */
export interface Namespace {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
}

export interface ClusterNode {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
}

export interface ClusterSnapshot {
  /** 1 for the first good snapshot of a source, +1 for every changed one after. */
  readonly generation: number
  /** Where it came from (a file path for the file source). */
  readonly origin: string
  readonly namespaces: readonly Namespace[]
  readonly nodes: readonly ClusterNode[]
  readonly pods: readonly Pod[]
  readonly services: readonly Service[]
}

export function podIPOfFamily (pod: Pod, family: Family): string | null {
  for (const ip of pod.podIPs) if ((ip.includes(':') ? 6 : 4) === family) return ip
  return null
}

export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v)
  }
  return value
}
