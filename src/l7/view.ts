import type { Pod } from '../discovery/model'
import type { L7Protocol } from './decision'
import type { L7PolicyLookup } from './policy-lookup'
import type { L7Table } from './table'

// The `l7` section of the agent's /debug/config: for every Service port (the source's
// decision, made by any node) and every port of this node's enrolled pods (the
// destination's decision), whether L7 is engaged, in which protocol, and why. A pod's
// ports are those a Service targets or a container declares, and `other` for the rest.

export interface L7ServicePortView {
  /** "namespace/name" */
  readonly service: string
  readonly port: number
  readonly name: string | null
  readonly appProtocol: string | null
  readonly engaged: boolean
  readonly protocol: L7Protocol
  readonly reason: string
}

export interface L7WorkloadPortView {
  /** "namespace/name" */
  readonly pod: string
  readonly workload: string
  /** A port number, or "other": every port without an entry of its own. */
  readonly port: number | 'other'
  readonly engaged: boolean
  readonly protocol: L7Protocol
  readonly reason: string
  /** The AuthorizationPolicy with L7 fields that selects the pod on this port, if any. */
  readonly policy: string | null
}

export interface L7View {
  /** The cluster snapshot's generation. */
  readonly generation: number
  readonly services: readonly L7ServicePortView[]
  readonly workloads: readonly L7WorkloadPortView[]
}

/** Ports outside a pod's own entries are asked about as this one (a port no Service targets and no container declares). */
const UNLISTED_PORT = 0

export function l7View (table: L7Table, pods: readonly Pod[], policy: L7PolicyLookup): L7View {
  const services: L7ServicePortView[] = []
  for (const { service, port, decision } of table.servicePorts()) {
    services.push({ service: `${service.namespace}/${service.name}`, port: port.port, name: port.name, appProtocol: port.appProtocol, ...decision })
  }
  const workloads: L7WorkloadPortView[] = []
  for (const pod of pods) {
    for (const port of [...table.workloadPorts(pod), 'other' as const]) {
      const ref = policy(pod, port === 'other' ? UNLISTED_PORT : port)
      const decision = table.forWorkload(pod, port === 'other' ? UNLISTED_PORT : port, ref)
      workloads.push({ pod: `${pod.namespace}/${pod.name}`, workload: pod.workload, port, ...decision, policy: ref })
    }
  }
  return { generation: table.generation, services, workloads }
}
