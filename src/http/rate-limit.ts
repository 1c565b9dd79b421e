import type { OutgoingHttpHeaders } from 'node:http'
import type { RateLimitVerdict, RequestRateLimit } from '../limits/types'
import type { RequestState } from './record'

// A destination pod's local rate limit, per request (as Envoy's local_ratelimit filter):
// the bucket is taken from once per request; an empty bucket answers 429 (flag RL; gRPC
// RESOURCE_EXHAUSTED), and either way the verdict's x-ratelimit-limit,
// x-ratelimit-remaining and x-ratelimit-reset headers go on the response (Envoy's
// enable_x_ratelimit_headers, draft-ietf-httpapi-ratelimit-headers).

export const RATE_LIMITED_BODY = 'local_rate_limited'

/** Takes one token for the request; false: limited (flag RL set). The verdict is kept on `st` for the response's headers. */
export function takeRateLimit (st: RequestState, limit: RequestRateLimit): boolean {
  const v = limit.take(Date.now())
  if (v === null) return true
  st.rateLimit = v
  if (v.allowed) return true
  st.flag('RL')
  return false
}

/** Adds the verdict's headers to `h` (a response's headers, lower case). */
export function addRateLimitHeaders (h: OutgoingHttpHeaders, v: RateLimitVerdict): OutgoingHttpHeaders {
  h['x-ratelimit-limit'] = String(v.limit)
  h['x-ratelimit-remaining'] = String(v.remaining)
  h['x-ratelimit-reset'] = String(Math.max(0, Math.ceil(v.resetSeconds)))
  return h
}
