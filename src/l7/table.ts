import type { ClusterSnapshot, Namespace, Pod, Service, ServicePort } from '../discovery/model'
import { resolveTargetPort, selectorMatches } from '../discovery/service-index'
import type { L7Decision } from './decision'
import { decideService, decideWorkload, l7ForService, type RouteEngagement, workloadPortProtocol } from './engage'
import type { PortProtocol } from './protocol'

// The L7 decisions of one cluster snapshot, made once when the snapshot arrives, so a
// connection costs one or two Map lookups and allocates nothing:
//   forService(service, port)       every Service port, keyed by the snapshot's own
//                                   ServicePort object (a ServiceIndex built from the
//                                   same snapshot hands those out)
//   forWorkload(pod, port, policy)  by pod uid, then port: the ports a Service targets
//                                   or a container declares; any other port of the pod
//                                   shares one decision (protocol detect). A policy's
//                                   decision is made the first time that policy is
//                                   asked about and kept (policies are few).
// Build a new table for every snapshot (and throw the old one away): nothing here is
// updated in place. A Service or pod of another snapshot is still answered, computed on
// the spot.

interface PortEntry {
  readonly protocol: PortProtocol
  readonly noPolicy: L7Decision
  /** Decisions when an L7 policy selects the pod, by policy ref. */
  readonly byPolicy: Map<string, L7Decision>
}

interface PodEntry {
  readonly pod: Pod
  readonly namespace: Namespace | undefined
  readonly ports: ReadonlyMap<number, PortEntry>
  /** Every port no Service targets and no container declares. */
  readonly other: PortEntry
}

export interface ServicePortDecision {
  readonly service: Service
  readonly port: ServicePort
  readonly decision: L7Decision
}

const OTHER_PORT: PortProtocol = Object.freeze({ protocol: 'detect', source: 'no Service exposes this port' })

export class L7Table {
  private constructor (
    readonly generation: number,
    private readonly snapshot: ClusterSnapshot | null,
    private readonly namespaces: ReadonlyMap<string, Namespace>,
    private readonly services: ReadonlyMap<ServicePort, ServicePortDecision>,
    private readonly pods: ReadonlyMap<string, PodEntry>,
    /** Invalid ferry.dev/l7 values in this snapshot, each once (warnings.ts logs new ones). */
    readonly warnings: readonly string[],
    /** The node whose pods have entries (undefined: every node's). */
    readonly node: string | undefined
  ) {}

  static empty (): L7Table { return new L7Table(0, null, new Map(), new Map(), new Map(), Object.freeze([]), undefined) }

  /**
   * `node`: only that node's pods get workload entries (destination decisions are made
   * where the pod runs). `routeOf`: the route targeting a Service port, if any (a route
   * makes its Service port L7).
   */
  static build (snapshot: ClusterSnapshot, opts: { readonly node?: string, readonly routeOf?: (service: Service, port: ServicePort) => RouteEngagement | null } = {}): L7Table {
    const namespaces = new Map(snapshot.namespaces.map((n) => [n.name, n]))
    const byNamespace = new Map<string, Service[]>()
    for (const s of snapshot.services) {
      if (s.selector === null) continue
      const list = byNamespace.get(s.namespace)
      if (list === undefined) byNamespace.set(s.namespace, [s]); else list.push(s)
    }
    const warnings = new Set<string>()
    const services = new Map<ServicePort, ServicePortDecision>()
    for (const service of snapshot.services) {
      for (const port of service.ports) {
        const { decision, invalid } = decideService(service, port, namespaces.get(service.namespace), opts.routeOf?.(service, port) ?? null)
        for (const w of invalid) warnings.add(w)
        services.set(port, Object.freeze({ service, port, decision }))
      }
    }
    const pods = new Map<string, PodEntry>()
    for (const pod of snapshot.pods) {
      if (pod.hostNetwork || pods.has(pod.uid) || (opts.node !== undefined && pod.nodeName !== opts.node)) continue
      const selecting = (byNamespace.get(pod.namespace) ?? []).filter((s) => selectorMatches(s.selector as Readonly<Record<string, string>>, pod.labels))
      const namespace = namespaces.get(pod.namespace)
      const entry = (proto: PortProtocol): PortEntry => {
        const { decision, invalid } = decideWorkload(pod, proto, namespace, null)
        for (const w of invalid) warnings.add(w)
        return { protocol: proto, noPolicy: decision, byPolicy: new Map() }
      }
      const ports = new Map<number, PortEntry>()
      for (const port of knownPorts(pod, selecting)) ports.set(port, entry(workloadPortProtocol(pod, port, selecting)))
      pods.set(pod.uid, { pod, namespace, ports, other: entry(OTHER_PORT) })
    }
    return new L7Table(snapshot.generation, snapshot, namespaces, services, pods, Object.freeze([...warnings]), opts.node)
  }

  /** At the source: a destination Service port. */
  forService (service: Service, port: ServicePort): L7Decision {
    return this.services.get(port)?.decision ?? l7ForService(service, port, this.namespaces.get(service.namespace))
  }

  /** At the destination: a pod's port, and the ref of the L7 policy that selects it there (InboundAuthorizer.l7PolicyFor), or null. */
  forWorkload (pod: Pod, port: number, policyL7Ref: string | null): L7Decision {
    const entry = this.pods.get(pod.uid)
    if (entry === undefined) {
      // Not in this snapshot (yet): decide from the pod as given.
      const namespace = this.namespaces.get(pod.namespace)
      return decideWorkload(pod, workloadPortProtocol(pod, port, this.snapshot?.services ?? []), namespace, policyL7Ref).decision
    }
    const p = entry.ports.get(port) ?? entry.other
    if (policyL7Ref === null) return p.noPolicy
    let d = p.byPolicy.get(policyL7Ref)
    if (d === undefined) {
      d = decideWorkload(entry.pod, p.protocol, entry.namespace, policyL7Ref).decision
      p.byPolicy.set(policyL7Ref, d)
    }
    return d
  }

  /** Every Service port's decision, in snapshot order. */
  servicePorts (): IterableIterator<ServicePortDecision> { return this.services.values() }

  /** The ports of a pod that have their own entry (Service targets and container ports), sorted; [] for an unknown pod. */
  workloadPorts (pod: Pod): readonly number[] {
    const entry = this.pods.get(pod.uid)
    return entry === undefined ? [] : [...entry.ports.keys()].sort((a, b) => a - b)
  }
}

/** A pod's container ports and the ports the Services that select it target on it. */
function knownPorts (pod: Pod, selecting: readonly Service[]): Set<number> {
  const ports = new Set<number>()
  for (const p of pod.ports) if (p.protocol === 'TCP') ports.add(p.containerPort)
  for (const s of selecting) {
    for (const sp of s.ports) {
      const target = sp.protocol === 'TCP' ? resolveTargetPort(sp, pod) : null
      if (target !== null) ports.add(target)
    }
  }
  return ports
}

const TABLES = new WeakMap<ClusterSnapshot, L7Table>()

/**
 * The table of a snapshot for a node, built once and kept while the snapshot is (the
 * agent's main thread asks for it from discovery, the admin server and warnings).
 */
export function l7TableFor (snapshot: ClusterSnapshot, node: string): L7Table {
  let table = TABLES.get(snapshot)
  if (table === undefined || table.node !== node) {
    table = L7Table.build(snapshot, { node })
    TABLES.set(snapshot, table)
  }
  return table
}
