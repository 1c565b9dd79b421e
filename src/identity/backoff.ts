import type { Random } from './clock'

// Retry delays for talking to the CA: exponential with jitter, so that agents cut off
// together (a controller restart) do not come back together. Attempt n (from 1) waits a
// random time in [d·(1 − jitter), d] where d = min(maxMs, initialMs · multiplier^(n−1)).

export interface BackoffPolicy {
  readonly initialMs: number
  readonly maxMs: number
  readonly multiplier: number
  /** Fraction of the delay that is random, in [0, 1]. */
  readonly jitter: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 1000, maxMs: 60_000, multiplier: 2, jitter: 0.5 })

export function backoffDelay (attempt: number, policy: BackoffPolicy, random: Random): number {
  const n = Math.max(1, Math.floor(attempt))
  const ceiling = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.multiplier, n - 1))
  return Math.round(ceiling * (1 - policy.jitter * random()))
}
