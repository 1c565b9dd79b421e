import { registerBalancer } from './balancer'
import { LeastConnections } from './least-connections'
import { RandomConnections } from './random-connection'
import { RoundRobin } from './round-robin'

// Importing this module registers the built-in connection balancers.
registerBalancer('round_robin', () => new RoundRobin())
registerBalancer('least_request', () => new LeastConnections())
registerBalancer('random', () => new RandomConnections())

export { type Balancer, type BalancerEndpoint, type BalancerFactory, registerBalancer, createBalancer, balancerNames } from './balancer'
export { RoundRobin } from './round-robin'
export { LeastConnections } from './least-connections'
export { RandomConnections } from './random-connection'
export { connectionBalancerFor } from './connection-policy'
export { BalancerPool, type BalancedSet, type PolicyFor } from './pool'
export type { PickInput, Placed, RequestBalancer } from './request'
export type { RequestBalancerOptions } from './request-base'
export { createRequestBalancer } from './request-factory'
export { PeakEwmaBalancer, DEFAULT_RTT_MS, DECAY_MS } from './request-p2c-ewma'
export { LeastRequestBalancer } from './request-least'
export { RandomBalancer } from './request-random'
export { RoundRobinRequestBalancer } from './request-round-robin'
export { RingHashBalancer } from './request-ring-hash'
