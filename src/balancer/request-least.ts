import type { BalancerEndpoint } from './balancer'
import type { PickInput } from './request'
import { RequestBalancerBase } from './request-base'

// LEAST_REQUEST as Envoy does it for endpoints of equal weight: power of two choices over
// the requests in flight — two distinct eligible endpoints at random, the one with fewer
// pending requests (the first on a tie). Cheaper than a full scan and, unlike always
// taking the global minimum, it does not send every new request to the same idle
// endpoint at once.

export class LeastRequestBalancer<E extends BalancerEndpoint> extends RequestBalancerBase<E> {
  pick (input: PickInput<E>): E | null {
    return this.picked(this.powerOfTwo(input, this.fewer))
  }

  private readonly fewer = (a: number, b: number): boolean => this.loads[a].pending < this.loads[b].pending
}
