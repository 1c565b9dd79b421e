import type { Balancer, BalancerEndpoint } from './balancer'

// Fewest open connections, for L4 services whose DestinationRule asks for LEAST_REQUEST:
// the endpoint with the fewest connections picked and not yet released. Ties go to the
// first one after the endpoint picked last, so endpoints with equal counts take new
// connections in turn (round robin among equals) rather than the first one taking them all. A full scan: connections are far rarer
// than requests, and an exact minimum is what a long-lived L4 connection deserves.
//
// Counts are kept by endpoint id, so they survive a list change; an endpoint's count is
// dropped when it leaves the list, and a release for an endpoint that is not counted (it
// left, or its connection was picked by a balancer this one replaced) is ignored — a
// count never goes below zero.

export class LeastConnections<E extends BalancerEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = []
  private counts: number[] = []
  private byId = new Map<string, number>()
  private start = 0

  update (endpoints: readonly E[]): void {
    const previous = new Map<string, number>()
    for (let i = 0; i < this.endpoints.length; i++) previous.set(this.endpoints[i].id, this.counts[i])
    this.endpoints = endpoints
    this.counts = endpoints.map((e) => previous.get(e.id) ?? 0)
    this.byId = new Map(endpoints.map((e, i) => [e.id, i]))
    this.start = endpoints.length === 0 ? 0 : this.start % endpoints.length
  }

  pick (): E | null {
    const n = this.endpoints.length
    if (n === 0) return null
    let best = this.start
    for (let k = 1, i = this.start + 1; k < n; k++, i++) {
      const j = i >= n ? i - n : i
      if (this.counts[j] < this.counts[best]) best = j
    }
    this.start = best + 1 === n ? 0 : best + 1
    this.counts[best]++
    return this.endpoints[best]
  }

  release (e: E): void {
    const i = this.byId.get(e.id)
    if (i !== undefined && this.counts[i] > 0) this.counts[i]--
  }

  /** Open connections by endpoint id (for /debug/config and tests). */
  open (): ReadonlyMap<string, number> {
    return new Map(this.endpoints.map((e, i) => [e.id, this.counts[i]]))
  }
}
