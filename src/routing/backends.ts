import type { BalancerEndpoint } from '../balancer/balancer'
import type { RequestBalancer } from '../balancer/request'
import type { Endpoint, ServicePortEntry } from '../discovery/service-index'
import { selectorMatches } from '../discovery/service-index'
import type { OutlierTracker, PoolGate, RetryBudget } from '../limits/types'
import type { BackendRef, ConnectionPolicy, LoadBalancerPolicy, TrafficPolicy } from './model'
import type { NodeLimits } from './node-limits'

// A worker's backends: per backend (a Service port in one address family, optionally a
// DestinationRule subset), its endpoints, its per-request balancer (latency estimates are
// this worker's own) and its node-wide limits (the same in every worker). Made on first
// use and kept across snapshots while the policy stays the same; a new snapshot updates
// the endpoints of those it keeps and drops the others.

export type RequestBalancerFactory = (policy: LoadBalancerPolicy) => RequestBalancer<Endpoint>

export interface Backend {
  /** "namespace/name:port[#subset]": the same in every worker (node-wide limits are keyed by it). */
  readonly key: string
  readonly ref: BackendRef
  readonly policy: TrafficPolicy
  endpoints: readonly Endpoint[]
  readonly balancer: RequestBalancer<Endpoint>
  readonly budget: RetryBudget | null
  readonly pool: PoolGate | null
  /** Its connection-pool limits as its attempts' upstream connections carry them out; null: none. */
  readonly connections: ConnectionPolicy | null
  readonly outliers: OutlierTracker | null
}

export function backendKey (ref: Pick<BackendRef, 'service' | 'port' | 'subset'>): string {
  return `${ref.service}:${ref.port}${ref.subset === null ? '' : `#${ref.subset.name}`}`
}

export class Backends {
  private readonly byKey = new Map<string, Backend>()
  private entries = new Map<string, ServicePortEntry>()

  constructor (private readonly balancers: RequestBalancerFactory, private readonly limits: NodeLimits | null) {}

  /** A new snapshot: endpoints re-read (entries by ServicePortEntry.key), backends whose policy changed dropped. */
  update (entries: Iterable<ServicePortEntry>, policyOf: (ref: BackendRef) => TrafficPolicy): void {
    this.entries = new Map([...entries].map((e) => [e.key, e]))
    for (const [key, b] of this.byKey) {
      const family = Number(key.slice(key.lastIndexOf('/v') + 2))
      if (!samePolicy(policyOf(b.ref), b.policy)) { this.byKey.delete(key); continue }
      const eps = this.endpointsOf(b.ref, family)
      if (!sameEndpoints(eps, b.endpoints)) { b.endpoints = eps; b.balancer.update(eps) }
    }
  }

  /** The backend `ref` in address family `family` (the called Service's VIP family). */
  get (ref: BackendRef, family: number, policyOf: (ref: BackendRef) => TrafficPolicy): Backend {
    const key = `${backendKey(ref)}/v${family}`
    let b = this.byKey.get(key)
    if (b === undefined) {
      const policy = policyOf(ref)
      const limitKey = backendKey(ref)
      const endpoints = this.endpointsOf(ref, family)
      const balancer = this.balancers(policy.loadBalancer)
      balancer.update(endpoints)
      const count = { n: endpoints.length }
      const budget = this.limits === null ? null : this.limits.budgetFor(`${ref.service}:${ref.port}`)
      const pool = this.limits === null || policy.connectionPool === null ? null : this.limits.poolFor(limitKey, policy.connectionPool)
      b = {
        key: limitKey,
        ref,
        policy,
        endpoints,
        balancer,
        budget,
        pool,
        // Keyed by the limits too: a changed policy gets new pools (the old ones idle out).
        connections: policy.connectionPool === null ? null : Object.freeze({ key: `${limitKey}/v${family} ${JSON.stringify(policy.connectionPool)}`, limits: policy.connectionPool, gate: pool }),
        outliers: this.limits === null || policy.outlierDetection === null ? null : this.limits.outliersFor(limitKey, policy.outlierDetection, () => (this.byKey.get(key)?.endpoints.length ?? count.n))
      }
      this.byKey.set(key, b)
    }
    return b
  }

  all (): IterableIterator<Backend> { return this.byKey.values() }

  private endpointsOf (ref: BackendRef, family: number): readonly Endpoint[] {
    const entry = this.entries.get(`${ref.service}:${ref.port}/v${family}`)
    if (entry === undefined) return []
    const labels = ref.subset?.labels
    return labels === undefined ? entry.endpoints : entry.endpoints.filter((e) => selectorMatches(labels, e.pod.labels))
  }
}

function sameEndpoints (a: readonly BalancerEndpoint[], b: readonly BalancerEndpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => e.id === b[i].id)
}

function samePolicy (a: TrafficPolicy, b: TrafficPolicy): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
