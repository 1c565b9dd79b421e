import type { BalancerEndpoint } from './balancer'
import type { PickInput } from './request'
import { RequestBalancerBase } from './request-base'

// RANDOM: an eligible endpoint uniformly at random.

export class RandomBalancer<E extends BalancerEndpoint> extends RequestBalancerBase<E> {
  pick (input: PickInput<E>): E | null {
    return this.picked(this.randomEligible(input))
  }
}
