import { backoffDelay } from '../identity/backoff'
import type { RetryOn, RetryPolicy } from '../routing/model'

// What a route's retry policy retries (Envoy's retry_on, as Istio names it) and how long
// a retry waits. Whether it may be retried at all (the body held, the count, the budget)
// is the attempt loop's (attempts.ts).

/** A response is retriable by its status, or by the grpc-status of a trailers-only response. */
export function retriableResponse (on: RetryOn, status: number, grpcStatus: number | null): boolean {
  return (on.serverError && status >= 500) ||
    (on.gatewayError && (status === 502 || status === 503 || status === 504)) ||
    (on.retriable4xx && status === 409) ||
    on.statuses.includes(status) ||
    (grpcStatus !== null && on.grpcStatuses.includes(grpcStatus))
}

/** A failure before any response: as Envoy, 5xx and gateway-error include a reset and a connect failure; connect-failure only the latter. */
export function retriableFailure (on: RetryOn, connect: boolean): boolean {
  return on.reset || on.serverError || on.gatewayError || (connect && on.connectFailure)
}

/** The wait before retry `n` (from 1): full jitter, a random time up to base·2^(n−1) capped at max (Envoy's). */
export function retryBackoffMs (policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const base = Math.max(policy.backoffBaseMs, MIN_MS)
  return backoffDelay(n, { initialMs: base, maxMs: Math.max(policy.backoffMaxMs, base), jitter: 1 }, random)
}

/** backoffDelay needs a positive base; a policy of 0 ms retries at once. */
const MIN_MS = 0.001
