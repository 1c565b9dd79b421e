// The value formats of the traffic-management kinds (Gateway API, Istio networking),
// checked by validate.ts: pure functions of one string that say what is wrong (null:
// nothing). The compilers (src/routing/) read values that passed these.

/** Gateway API's Duration (GEP-2257): 1 to 4 parts of an integer and h, m, s or ms ("1h30m", "500ms"). */
const GATEWAY_DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/
/** Istio's durations as its documents write them: Go's, without a sign ("1.5s", "5m", "100ms"). */
const GO_DURATION = /^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$/
/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** A DNS name, optionally with a leading "*." (Gateway API's Hostname). */
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/** Istio's retryOn policies (Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on names). */
export const RETRY_ON_POLICIES: ReadonlySet<string> = new Set([
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'
])
/** Of those, the ones Ferry does not carry out (anything it cannot tell from the answer it sees). */
const RETRY_ON_UNSUPPORTED: ReadonlySet<string> = new Set(['envoy-ratelimited', 'retriable-headers', 'http3-post-connect-failure'])

/** gRPC status codes by name (Istio's abort.grpcStatus takes the name, or the number as a string). */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = Object.freeze({
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16
})

export function gatewayDurationProblem (s: string): string | null {
  return GATEWAY_DURATION.test(s) ? null : 'is not a Gateway API duration (1 to 4 parts of digits and h, m, s or ms: "10s", "500ms", "1h30m")'
}

export function durationProblem (s: string): string | null {
  return GO_DURATION.test(s) ? null : 'is not a duration (e.g. "10s", "1.5s", "500ms", "5m")'
}

export function headerNameProblem (s: string): string | null {
  return s.length > 0 && s.length <= 256 && TOKEN.test(s) ? null : 'is not an HTTP header name'
}

export function hostnameProblem (s: string): string | null {
  return s.length <= 253 && HOSTNAME.test(s) ? null : 'is not a hostname (lowercase DNS name, optionally starting with "*.")'
}

/** Regular expressions are run by JavaScript's engine; one it cannot compile is refused here. */
export function regexProblem (s: string): string | null {
  try {
    // eslint-disable-next-line no-new
    new RegExp(s, 'u')
    return null
  } catch (err) {
    return `is not a regular expression Ferry can run (${(err as Error).message})`
  }
}

export function exportToProblem (s: string): string | null {
  return s === '*' ? null : 'is not supported by Ferry: routes and traffic policies apply to callers in every namespace, so exportTo may only be "*"'
}

export function retryOnProblem (s: string): string | null {
  for (const raw of s.split(',')) {
    const p = raw.trim()
    if (/^[0-9]{3}$/.test(p) && Number(p) >= 100 && Number(p) <= 599) continue
    if (RETRY_ON_UNSUPPORTED.has(p)) return `names ${JSON.stringify(p)}, which Ferry does not carry out (it retries on 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, HTTP statuses and the gRPC statuses cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)`
    if (!RETRY_ON_POLICIES.has(p)) return `names ${JSON.stringify(p)}, which is not a retryOn policy (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status)`
  }
  return null
}

export function grpcStatusProblem (s: string): string | null {
  if (Object.hasOwn(GRPC_STATUS_CODES, s)) return null
  if (/^[0-9]{1,2}$/.test(s) && Number(s) <= 16) return null
  return 'is not a gRPC status (a name such as "UNAVAILABLE", or its number 0 … 16)'
}

/** A Gateway API path for Exact and PathPrefix matches: absolute, no empty, "." or ".." segment, no "%2f". */
export function httpPathProblem (s: string): string | null {
  if (!s.startsWith('/')) return 'must be an absolute path (start with "/")'
  if (s.includes('//')) return 'must not contain "//"'
  if (/\/\.\.?(\/|$)/.test(s)) return 'must not contain "/./" or "/../" segments'
  if (/%2f|%2F|#/.test(s)) return 'must not contain "%2f" or "#"'
  return null
}
