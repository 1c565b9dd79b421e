import t from 'tap'
import { retriableFailure, retriableResponse, retryBackoffMs } from '../../src/http/retry-on'
import type { RetryPolicy } from '../../src/routing/model'
import { NO_RETRY_ON } from '../helpers/plans'

// What a retry policy retries (Envoy's retry_on semantics) and its backoff (full jitter).

t.test('statuses: 5xx, gateway-error, retriable-4xx, listed codes, trailers-only gRPC statuses', async (t) => {
  t.ok(retriableResponse({ ...NO_RETRY_ON, serverError: true }, 500, null))
  t.notOk(retriableResponse({ ...NO_RETRY_ON, serverError: true }, 429, null))
  t.ok(retriableResponse({ ...NO_RETRY_ON, gatewayError: true }, 504, null))
  t.notOk(retriableResponse({ ...NO_RETRY_ON, gatewayError: true }, 500, null))
  t.ok(retriableResponse({ ...NO_RETRY_ON, retriable4xx: true }, 409, null))
  t.ok(retriableResponse({ ...NO_RETRY_ON, statuses: [429] }, 429, null))
  t.ok(retriableResponse({ ...NO_RETRY_ON, grpcStatuses: [14] }, 200, 14))
  t.notOk(retriableResponse({ ...NO_RETRY_ON, grpcStatuses: [14] }, 200, 0))
  t.notOk(retriableResponse(NO_RETRY_ON, 503, 14))
})

t.test('failures: connect-failure only for connect failures; reset, 5xx, gateway-error for both', async (t) => {
  t.ok(retriableFailure({ ...NO_RETRY_ON, connectFailure: true }, true))
  t.notOk(retriableFailure({ ...NO_RETRY_ON, connectFailure: true }, false))
  for (const k of ['reset', 'serverError', 'gatewayError'] as const) {
    t.ok(retriableFailure({ ...NO_RETRY_ON, [k]: true }, false), `${k}: a reset`)
    t.ok(retriableFailure({ ...NO_RETRY_ON, [k]: true }, true), `${k}: a connect failure`)
  }
  t.notOk(retriableFailure({ ...NO_RETRY_ON, grpcStatuses: [14] }, true))
})

t.test('backoff: full jitter up to base·2^(n−1), capped at max', async (t) => {
  const p: RetryPolicy = { attempts: 5, perTryTimeoutMs: null, on: NO_RETRY_ON, backoffBaseMs: 25, backoffMaxMs: 250 }
  t.equal(retryBackoffMs(p, 1, () => 0), 25, 'the ceiling when the draw is 0')
  t.equal(retryBackoffMs(p, 3, () => 0), 100)
  t.equal(retryBackoffMs(p, 10, () => 0), 250, 'capped')
  t.equal(retryBackoffMs(p, 3, () => 0.999), 0, 'down to nothing')
  const draws = Array.from({ length: 200 }, () => retryBackoffMs(p, 2, Math.random))
  t.ok(draws.every((d) => d >= 0 && d <= 50))
  t.ok(new Set(draws).size > 10, 'spread over the range')
  t.equal(retryBackoffMs({ ...p, backoffBaseMs: 0, backoffMaxMs: 0 }, 3, () => 0), 0, 'a zero base retries at once')
})
