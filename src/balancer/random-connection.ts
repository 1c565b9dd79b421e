import type { Balancer, BalancerEndpoint } from './balancer'

// Uniformly random endpoint per connection, for L4 services whose DestinationRule asks
// for RANDOM.

export class RandomConnections<E extends BalancerEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = []

  constructor (private readonly random: () => number = Math.random) {}

  update (endpoints: readonly E[]): void { this.endpoints = endpoints }

  pick (): E | null {
    const n = this.endpoints.length
    if (n === 0) return null
    const i = Math.floor(this.random() * n)
    return this.endpoints[i < n ? i : n - 1]
  }
}
