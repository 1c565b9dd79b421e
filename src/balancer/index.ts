import { registerBalancer } from './balancer'
import { RoundRobin } from './round-robin'

// Importing this module registers the built-in balancers.
registerBalancer('round_robin', () => new RoundRobin())

export { type Balancer, type BalancerEndpoint, type BalancerFactory, registerBalancer, createBalancer, balancerNames } from './balancer'
export { RoundRobin } from './round-robin'
export { BalancerPool, type BalancedSet } from './pool'
