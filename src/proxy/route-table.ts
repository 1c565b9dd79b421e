import { BalancerPool } from '../balancer'
import type { ClusterSnapshot } from '../discovery/model'
import { type Endpoint, ServiceIndex } from '../discovery/service-index'

// The routing state every handler reads: the service index of the current snapshot and
// one balancer per service port. Swapped as a whole on each snapshot; handlers read it
// per connection, so a connection routes against one consistent snapshot.

export interface Routes {
  readonly index: ServiceIndex
  pick (serviceKey: string): Endpoint | null
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

  pick (serviceKey: string): Endpoint | null { return this.balancers.pick(serviceKey) }
}
