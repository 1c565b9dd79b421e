import { ferryError } from '../errors'

// The HTTP engine's limits on what a downstream client may send, as Envoy's defaults
// (its HTTP connection manager and HTTP/2 codec), and how long pooled upstream
// connections stay idle: validated once, then frozen. A client that crosses one is
// refused (server-h1.ts, server-h2.ts say how) and the refusal is counted by reason;
// other connections are not affected.

export interface HttpLimits {
  /** Request line + headers, bytes (Envoy: max_request_headers_kb 60). Over: 431, close. */
  readonly maxHeaderBytes: number
  /** Header fields per request (Envoy: max_headers_count 100). Over: 431, close. */
  readonly maxHeaders: number
  /** Time to receive a request's complete headers once its first byte arrived, ms (slowloris). Over: 408, close. */
  readonly headerTimeoutMs: number
  /** A keep-alive connection with no request in flight is closed after this long, ms (Envoy's idle_timeout is 1 h; a node proxy holds many). */
  readonly idleTimeoutMs: number
  /** HTTP/2 streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; Envoy 2^31-1, Istio's sidecars cap by memory — 100 here). */
  readonly maxConcurrentStreams: number
  /** HTTP/2 streams a client may reset before their response, per second, before the connection is closed with GOAWAY (rapid reset). */
  readonly maxResetsPerSecond: number
  /** HTTP/2 streams refused because the client went over maxConcurrentStreams, per connection, before GOAWAY (stream flood). */
  readonly maxRefusedStreams: number
  /**
   * A pooled upstream connection (HTTP/1.1 with no request, HTTP/2 with no stream) is
   * closed after this long idle, ms. 60 s: below the keep-alive of common servers that
   * keep connections long (nginx 75 s; Node's 5 s and servers that send a Keep-Alive
   * hint are followed by Node's Agent on sockets), and below idleTimeoutMs, so between
   * two nodes the pooling side closes first and never reuses a connection the other is
   * closing. Envoy's 1 h is long for a node proxy that pools to every endpoint.
   */
  readonly upstreamIdleTimeoutMs: number
}

export const HTTP_LIMIT_DEFAULTS: HttpLimits = Object.freeze({
  maxHeaderBytes: 60 * 1024,
  maxHeaders: 100,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxConcurrentStreams: 100,
  maxResetsPerSecond: 200,
  maxRefusedStreams: 100,
  upstreamIdleTimeoutMs: 60_000
})

const KEYS = Object.keys(HTTP_LIMIT_DEFAULTS) as Array<keyof HttpLimits>

/** The largest value of any limit: an HTTP/2 setting's bound, and a Node timer's (a longer delay fires at once). */
export const HTTP_LIMIT_MAX = 2 ** 31 - 1

/** Defaults with `given` laid over them; every value an integer from 1 to HTTP_LIMIT_MAX, no unknown key. Throws FERRY_ERR_INVALID_ARG. */
export function resolveHttpLimits (given: Partial<HttpLimits> = {}): HttpLimits {
  for (const k of Object.keys(given)) {
    if (!(KEYS as string[]).includes(k)) throw ferryError('FERRY_ERR_INVALID_ARG', `unknown HTTP limit "${k}" (known: ${KEYS.join(', ')})`)
  }
  const out: Record<string, number> = {}
  for (const k of KEYS) {
    const v = given[k] ?? HTTP_LIMIT_DEFAULTS[k]
    if (!Number.isSafeInteger(v) || v <= 0 || v > HTTP_LIMIT_MAX) throw ferryError('FERRY_ERR_INVALID_ARG', `HTTP limit ${k} must be an integer from 1 to ${HTTP_LIMIT_MAX}, not ${String(v)}`)
    out[k] = v
  }
  return Object.freeze(out as unknown as HttpLimits)
}
