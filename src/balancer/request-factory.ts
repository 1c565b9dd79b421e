import type { LoadBalancerPolicy } from '../routing/model'
import type { BalancerEndpoint } from './balancer'
import type { RequestBalancer } from './request'
import type { RequestBalancerOptions } from './request-base'
import { LeastRequestBalancer } from './request-least'
import { PeakEwmaBalancer } from './request-p2c-ewma'
import { RandomBalancer } from './request-random'
import { RingHashBalancer } from './request-ring-hash'
import { RoundRobinRequestBalancer } from './request-round-robin'

// The per-request balancer a backend's traffic policy asks for. P2C over peak-EWMA is
// the default (a backend with no DestinationRule); the others come from a
// DestinationRule's trafficPolicy.loadBalancer. Which request attribute a consistent hash
// reads (header, cookie, source IP, query parameter) is the caller's business: it passes
// that value as PickInput.hash.

export function createRequestBalancer<E extends BalancerEndpoint> (policy: LoadBalancerPolicy, options: RequestBalancerOptions = {}): RequestBalancer<E> {
  switch (policy.type) {
    case 'P2C_PEAK_EWMA': return new PeakEwmaBalancer<E>(options)
    case 'LEAST_REQUEST': return new LeastRequestBalancer<E>(options)
    case 'RANDOM': return new RandomBalancer<E>(options)
    case 'ROUND_ROBIN': return new RoundRobinRequestBalancer<E>(options)
    case 'CONSISTENT_HASH': return new RingHashBalancer<E>(options)
  }
}
