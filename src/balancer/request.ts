import type { BalancerEndpoint } from './balancer'

// Per-request load balancing (L7): unlike a connection balancer (balancer.ts), the
// balancer is told when each request it placed ends, so that it can weigh endpoints by
// load and latency (P2C over peak-EWMA, least request). One instance per backend (a
// Service port, or a DestinationRule subset of it) per worker: latency estimates are a
// worker's own; node-wide limits live in src/limits/.

export interface PickInput<E extends BalancerEndpoint> {
  /** Whether an endpoint may take this attempt (not ejected; not tried when another may be). */
  readonly eligible: (e: E) => boolean
  /** Consistent hashing's input (header, cookie, source IP, query parameter); null: none. */
  readonly hash: string | null
}

/** A placed request: `end` once, when its response is complete or it failed. */
export interface Placed {
  end (nowMs: number, failed: boolean): void
}

export interface RequestBalancer<E extends BalancerEndpoint> {
  /** Replace the endpoint list (sorted, stable order). Called only when it changed. */
  update (endpoints: readonly E[]): void
  pick (input: PickInput<E>): E | null
  /** The request placed on `e` starts at `nowMs`. */
  place (e: E, nowMs: number): Placed
  /** What /debug/config shows of an endpoint (its EWMA in ms, pending requests), by id. */
  describe (): ReadonlyArray<{ readonly id: string, readonly ewmaMs: number | null, readonly pending: number }>
}
