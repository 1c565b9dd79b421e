import { BalancerPool, type PolicyFor } from '../balancer'
import type { ClusterSnapshot } from '../discovery/model'
import { type Endpoint, ServiceIndex, type ServicePortEntry } from '../discovery/service-index'
import type { EndpointResult, OutlierTracker } from '../limits/types'

// The routing state every handler reads: the service index of the current snapshot and
// one balancer per service port. Swapped as a whole on each snapshot; handlers read it
// per connection, so a connection routes against one consistent snapshot.
//
// A service port's connection balancer is the table's default (round robin) unless the
// function given to setPolicyFor() names another registered one for its key
// (round_robin, least_request, random: an L4 service's DestinationRule). Balancers that
// count open connections (least_request) are told when each picked connection ends:
// releaseFor() gives the route stage the callback, null for every other balancer.
// Outlier detection of L4 connections (a DestinationRule's outlierDetection on the
// Service): with it, a pick skips the endpoints the node has ejected, and the connect
// stage reports each connect's outcome (a failure to connect is a local-origin failure;
// src/limits/outliers.ts). Without it (the default) a pick is the balancer's alone, at
// the same cost as ever.

/** The outcome of one L4 connect to the endpoint picked: 'failed' counts toward ejecting it. */
export type ConnectOutcome = (result: 'connected' | 'failed') => void

export interface Routes {
  readonly index: ServiceIndex
  pick (serviceKey: string): Endpoint | null
  /** How to tell the balancer of `serviceKey` that a connection it picked ended; null: it does not count them. */
  releaseFor? (serviceKey: string): ((endpoint: Endpoint) => void) | null
  /**
   * Where a DestinationRule's outlier detection applies to the Service at `vip`:`port`:
   * how to report the connect to its endpoint `endpointId`; else null (at once when no
   * outlier detection is configured at all).
   */
  connectOutcome? (vip: string, port: number, endpointId: string): ConnectOutcome | null
}

/** The outlier tracker of a Service port's L4 connections, or null: none configured. */
export type L4OutlierLookup = (entry: ServicePortEntry) => OutlierTracker | null

export class RouteTable implements Routes {
  index: ServiceIndex = ServiceIndex.empty()
  private readonly balancers: BalancerPool<Endpoint>
  private outliers: L4OutlierLookup | null = null
  private byKey = new Map<string, ServicePortEntry>()
  private trackers = new Map<string, OutlierTracker | null>()

  constructor (balancer = 'round_robin', private readonly now: () => number = Date.now) {
    this.balancers = new BalancerPool<Endpoint>(balancer)
  }

  update (snapshot: ClusterSnapshot): void {
    const index = ServiceIndex.build(snapshot)
    this.balancers.sync(index.entries())
    this.index = index
    this.byKey = new Map([...index.entries()].map((e) => [e.key, e]))
    this.trackers.clear()
  }

  /** New per-service policies (a configuration publication): applied to the current snapshot now. */
  setPolicyFor (policyFor: PolicyFor): void {
    this.balancers.setPolicyFor(policyFor)
    this.balancers.sync(this.index.entries())
  }

  /** The connection picked on `endpoint` for `serviceKey` ended (or never connected). */
  release (serviceKey: string, endpoint: Endpoint): void { this.balancers.release(serviceKey, endpoint) }

  releaseFor (serviceKey: string): ((endpoint: Endpoint) => void) | null {
    return this.balancers.countsConnections(serviceKey) ? (endpoint) => { this.release(serviceKey, endpoint) } : null
  }

  /** Outlier detection for L4 connections (null: none); trackers are asked again for every service port. */
  setOutlierDetection (lookup: L4OutlierLookup | null): void {
    this.outliers = lookup
    this.trackers.clear()
  }

  pick (serviceKey: string): Endpoint | null {
    const first = this.balancers.pick(serviceKey)
    if (this.outliers === null || first === null) return first
    const tracker = this.trackerOf(serviceKey)
    if (tracker === null) return first
    const n = this.byKey.get(serviceKey)?.endpoints.length ?? 1
    const now = this.now()
    // The balancer's order, skipping ejected endpoints; all ejected (detection keeps one
    // healthy, so only in a race): the first pick.
    let e: Endpoint | null = first
    for (let i = 0; i < n && e !== null; i++) {
      if (!tracker.ejected(e.id, now, n)) {
        if (e !== first) this.balancers.release(serviceKey, first)
        return e
      }
      // A balancer that counts connections counted this pick: it is not taken.
      if (e !== first) this.balancers.release(serviceKey, e)
      e = this.balancers.pick(serviceKey)
    }
    if (e !== null && e !== first) this.balancers.release(serviceKey, e)
    return first
  }

  connectOutcome (vip: string, port: number, endpointId: string): ConnectOutcome | null {
    if (this.outliers === null) return null
    const entry = this.index.lookup(vip, port)
    if (entry === undefined) return null
    const tracker = this.trackerOf(entry.key)
    if (tracker === null) return null
    const n = entry.endpoints.length
    return (result) => {
      const r: EndpointResult = result === 'connected' ? 'success' : 'local_failure'
      tracker.report(endpointId, r, this.now(), n)
    }
  }

  private trackerOf (serviceKey: string): OutlierTracker | null {
    let t = this.trackers.get(serviceKey)
    if (t === undefined) {
      const entry = this.byKey.get(serviceKey)
      t = entry === undefined || this.outliers === null ? null : this.outliers(entry)
      this.trackers.set(serviceKey, t)
    }
    return t
  }
}
