import { ferryError } from '../errors'
import type { Random } from './clock'

// Retry delays, for everything that retries (certificate requests, the configuration
// stream, the Kubernetes watches, pod enrollment, the lab's CNI calls): exponential,
// with jitter where many agents could retry together (a controller restart cuts them
// all off at once, and they should not come back at once). Attempt n (from 1) waits a
// random time in [d·(1 − jitter), d] where d = min(maxMs, initialMs · multiplier^(n−1)).

export interface BackoffPolicy {
  readonly initialMs: number
  readonly maxMs: number
  /** Growth from one attempt to the next; default 2 (doubling). */
  readonly multiplier?: number
  /** Fraction of the delay that is random, in [0, 1]; default 0 (none). */
  readonly jitter?: number
}

const SHAPE_DEFAULTS = Object.freeze({ multiplier: 2, jitter: 0 })

/** Certificate requests to the CA: 1 s to 60 s, doubling, half of it random. */
export const DEFAULT_BACKOFF: Required<BackoffPolicy> = Object.freeze({ initialMs: 1000, maxMs: 60_000, multiplier: 2, jitter: 0.5 })

/** Streams and watches to a control plane (the controller, the API server): 0.5 s to 30 s, doubling, half of it random. */
export const RECONNECT_BACKOFF: Required<BackoffPolicy> = Object.freeze({ initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.5 })

/** The delay before attempt `attempt` (1 for the first retry). `random` matters only with jitter. */
export function backoffDelay (attempt: number, policy: BackoffPolicy, random: Random = Math.random): number {
  const n = Math.max(1, Math.floor(attempt))
  const multiplier = policy.multiplier ?? SHAPE_DEFAULTS.multiplier
  const jitter = policy.jitter ?? SHAPE_DEFAULTS.jitter
  const ceiling = Math.min(policy.maxMs, policy.initialMs * Math.pow(multiplier, n - 1))
  return Math.round(ceiling * (1 - jitter * random()))
}

/** The policy with its defaults filled in, frozen; FERRY_ERR_INVALID_ARG naming `what` if it cannot work. */
export function checkBackoff (policy: BackoffPolicy, what: string): Required<BackoffPolicy> {
  const p = Object.freeze({ ...SHAPE_DEFAULTS, ...policy })
  if (!(p.initialMs > 0 && p.maxMs >= p.initialMs && p.multiplier >= 1 && p.jitter >= 0 && p.jitter <= 1)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `${what} ${JSON.stringify(p)} is invalid: expected 0 < initialMs ≤ maxMs, multiplier ≥ 1, jitter from 0 to 1`)
  }
  return p
}
