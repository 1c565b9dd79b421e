import { canonicalIP, type Family, familyOf } from './ip'
import type { ClusterSnapshot, Namespace, Pod, Service, ServicePort } from './model'

// Lookups the proxy does per connection, built once per snapshot:
//   VIP:port  → service port → endpoints (ready pods matching the selector, with an IP
//               of the VIP's family and the target port resolved, named ports included;
//               not-ready pods too when the Service publishes them, as EndpointSlices do)
//   pod IP    → pod (to name the peer of an inbound connection or the endpoint pod)
// TCP only: the proxy carries TCP.

export interface Endpoint {
  /** "address|port": the balancer's identity of this endpoint. */
  readonly id: string
  readonly address: string
  readonly port: number
  readonly family: Family
  readonly pod: Pod
}

export interface ServicePortEntry {
  /** Stable identity of this (service, port, family): the balancer's key. */
  readonly key: string
  readonly service: Service
  readonly port: ServicePort
  readonly vip: string
  readonly family: Family
  /** "name.namespace" */
  readonly serviceName: string
  /** Ready endpoints, sorted by address then port, so identical sets compare equal across snapshots. */
  readonly endpoints: readonly Endpoint[]
}

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed'])

export class ServiceIndex {
  private constructor (
    readonly generation: number,
    private readonly byVip: ReadonlyMap<string, ServicePortEntry>,
    private readonly byPodIP: ReadonlyMap<string, Pod>,
    private readonly byEndpoint: ReadonlyMap<string, ServicePortEntry>,
    private readonly namespaces: ReadonlyMap<string, Namespace>,
    private readonly byName: ReadonlyMap<string, Pod>
  ) {}

  static empty (): ServiceIndex { return new ServiceIndex(0, new Map(), new Map(), new Map(), new Map(), new Map()) }

  static build (snapshot: ClusterSnapshot): ServiceIndex {
    const live = snapshot.pods.filter((p) => p.phase === null || !TERMINAL_PHASES.has(p.phase))
    const byPodIP = new Map<string, Pod>()
    for (const pod of live) {
      if (pod.hostNetwork) continue
      for (const ip of pod.podIPs) if (!byPodIP.has(ip)) byPodIP.set(ip, pod)
    }
    const byVip = new Map<string, ServicePortEntry>()
    const byEndpoint = new Map<string, ServicePortEntry>()
    for (const service of snapshot.services) {
      const selected = service.selector === null ? [] : live.filter((p) => p.namespace === service.namespace && selectorMatches(service.selector!, p.labels))
      for (const vip of service.clusterIPs) {
        const family = familyOf(vip)
        for (const port of service.ports) {
          if (port.protocol !== 'TCP') continue
          const endpoints: Endpoint[] = []
          const all: Endpoint[] = []
          for (const pod of selected) {
            const address = pod.podIPs.find((ip) => familyOf(ip) === family)
            const target = resolveTargetPort(port, pod)
            if (address === undefined || target === null) continue
            const endpoint = { id: `${address}|${target}`, address, port: target, family, pod }
            all.push(endpoint)
            if (pod.ready || service.publishNotReadyAddresses) endpoints.push(endpoint)
          }
          endpoints.sort(compareEndpoints)
          const key = `${service.namespace}/${service.name}:${port.port}/v${family}`
          const entry: ServicePortEntry = Object.freeze({
            key, service, port, vip, family, serviceName: `${service.name}.${service.namespace}`, endpoints: Object.freeze(endpoints)
          })
          byVip.set(vipKey(vip, port.port), entry)
          // A pod that is not ready is still the service's (it names inbound connections that reach it).
          for (const e of all) if (!byEndpoint.has(e.id)) byEndpoint.set(e.id, entry)
        }
      }
    }
    const byName = new Map(live.map((p) => [`${p.namespace}/${p.name}`, p]))
    return new ServiceIndex(snapshot.generation, byVip, byPodIP, byEndpoint, new Map(snapshot.namespaces.map((n) => [n.name, n])), byName)
  }

  /** The service port behind VIP address:port (address in any spelling), if any. */
  lookup (address: string, port: number): ServicePortEntry | undefined {
    const ip = canonicalIP(address)
    return ip === null ? undefined : this.byVip.get(vipKey(ip, port))
  }

  /** The pod that owns this IP (host-network pods excluded), if any. */
  podByIP (address: string): Pod | undefined {
    const ip = canonicalIP(address)
    return ip === null ? undefined : this.byPodIP.get(ip)
  }

  /** The pod namespace/name (not terminated), if any: telemetry reads its labels (src/telemetry/istio-labels.ts). */
  podByName (namespace: string, name: string): Pod | undefined {
    return this.byName.get(`${namespace}/${name}`)
  }

  /** A service port that selects the pod at address:port, ready or not (first by service order), if any. */
  serviceForEndpoint (address: string, port: number): ServicePortEntry | undefined {
    const ip = canonicalIP(address)
    return ip === null ? undefined : this.byEndpoint.get(`${ip}|${port}`)
  }

  namespace (name: string): Namespace | undefined { return this.namespaces.get(name) }

  entries (): IterableIterator<ServicePortEntry> { return this.byVip.values() }
}

/** A Service's targetPort on one pod: a number as is, a name through the pod's container ports (null if absent). */
export function resolveTargetPort (port: ServicePort, pod: Pod): number | null {
  if (typeof port.targetPort === 'number') return port.targetPort
  if (/^\d+$/.test(port.targetPort)) return Number(port.targetPort)
  const named = pod.ports.find((p) => p.name === port.targetPort && p.protocol === port.protocol)
  return named === undefined ? null : named.containerPort
}

/** A Service's selector (equality only) against a pod's labels. */
export function selectorMatches (selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false
  return true
}

function vipKey (ip: string, port: number): string { return `${ip}|${port}` }

function compareEndpoints (a: Endpoint, b: Endpoint): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port
}
