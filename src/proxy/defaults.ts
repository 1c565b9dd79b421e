import { performance } from 'node:perf_hooks'
import type { Clock } from './conn'

// Data-path defaults, and the one place a handler's optional settings are resolved.
// Ports live in src/config/env.ts; these are timings.
export const PROXY_DEFAULTS = Object.freeze({
  /** Upstream TCP connect timeout (Envoy/Istio default: 10 s). */
  connectTimeoutMs: 10_000
})

/** What every handler (outbound, inbound, tunnel-inbound) may be given; tests inject both. */
export interface HandlerTimings {
  readonly connectTimeoutMs?: number
  readonly clock?: Clock
}

export interface ResolvedTimings {
  readonly timeoutMs: number
  readonly clock: Clock
}

const MONOTONIC: Clock = () => performance.now()

/** A handler's settings with the defaults filled in: the connect timeout, a monotonic clock. */
export function resolveTimings (t: HandlerTimings): ResolvedTimings {
  return Object.freeze({ timeoutMs: t.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs, clock: t.clock ?? MONOTONIC })
}
