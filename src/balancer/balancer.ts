import { ferryError } from '../errors'

// Load balancers are registered by name, like grpc-js's. A balancer instance serves one
// service port: it is told the endpoint list whenever a snapshot changes it and is asked
// to pick one per connection. It sees endpoints only through this narrow shape.

export interface BalancerEndpoint {
  /** Stable identity across snapshots ("address|port"). */
  readonly id: string
}

export interface Balancer<E extends BalancerEndpoint> {
  /** Replace the endpoint list (sorted, stable order). Called only when the list changed. */
  update (endpoints: readonly E[]): void
  /** The endpoint for the next connection, or null when there is none. */
  pick (): E | null
  /**
   * The connection picked on `e` ended (or failed to connect). Only balancers that count
   * open connections implement it; the proxy calls it once per picked connection.
   */
  release? (e: E): void
}

export type BalancerFactory = <E extends BalancerEndpoint>() => Balancer<E>

const registry = new Map<string, BalancerFactory>()

export function registerBalancer (name: string, factory: BalancerFactory): void {
  registry.set(name, factory)
}

export function createBalancer<E extends BalancerEndpoint> (name: string): Balancer<E> {
  const factory = registry.get(name)
  if (factory === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `unknown balancer "${name}" (known: ${[...registry.keys()].join(', ')})`)
  return factory<E>()
}

export function balancerNames (): string[] { return [...registry.keys()] }
