import { BalancerPool, type PolicyFor } from '../balancer'
import type { ClusterSnapshot } from '../discovery/model'
import { type Endpoint, ServiceIndex } from '../discovery/service-index'

// The routing state every handler reads: the service index of the current snapshot and
// one balancer per service port. Swapped as a whole on each snapshot; handlers read it
// per connection, so a connection routes against one consistent snapshot.
//
// A service port's connection balancer is the table's default (round robin) unless the
// function given to setPolicyFor() names another registered one for its key
// (round_robin, least_request, random: an L4 service's DestinationRule). Balancers that
// count open connections (least_request) are told when each picked connection ends:
// releaseFor() gives the route stage the callback, null for every other balancer.

export interface Routes {
  readonly index: ServiceIndex
  pick (serviceKey: string): Endpoint | null
  /** How to tell the balancer of `serviceKey` that a connection it picked ended; null: it does not count them. */
  releaseFor? (serviceKey: string): ((endpoint: Endpoint) => void) | null
}

export class RouteTable implements Routes {
  index: ServiceIndex = ServiceIndex.empty()
  private readonly balancers: BalancerPool<Endpoint>

  constructor (balancer = 'round_robin') {
    this.balancers = new BalancerPool<Endpoint>(balancer)
  }

  update (snapshot: ClusterSnapshot): void {
    const index = ServiceIndex.build(snapshot)
    this.balancers.sync(index.entries())
    this.index = index
  }

  /** New per-service policies (a configuration publication): applied to the current snapshot now. */
  setPolicyFor (policyFor: PolicyFor): void {
    this.balancers.setPolicyFor(policyFor)
    this.balancers.sync(this.index.entries())
  }

  pick (serviceKey: string): Endpoint | null { return this.balancers.pick(serviceKey) }

  /** The connection picked on `endpoint` for `serviceKey` ended (or never connected). */
  release (serviceKey: string, endpoint: Endpoint): void { this.balancers.release(serviceKey, endpoint) }

  releaseFor (serviceKey: string): ((endpoint: Endpoint) => void) | null {
    return this.balancers.countsConnections(serviceKey) ? (endpoint) => { this.release(serviceKey, endpoint) } : null
  }
}
