import { Counter, type Registry } from 'prom-client'

// Hostile or broken HTTP refused by the engine, counted by reason. One counter per
// worker registry (the worker's ProxyMetrics registry), named beside Ferry's other
// internals.

export const HTTP_REFUSED_METRIC = 'ferry_http_refused_total'

/**
 * Why a downstream connection (or, for L7 detection, its HTTP handling) was refused:
 *   header_too_large  request line + headers over maxHeaderBytes (431)
 *   too_many_headers  more than maxHeaders fields (431)
 *   smuggling         conflicting Content-Length / Transfer-Encoding (HTTP/1.1: 400); on HTTP/2 translated to HTTP/1.1, connection-specific headers or a `te` other than trailers (stream reset)
 *   invalid           a malformed request line, header name or value (400)
 *   header_timeout    headers not complete within headerTimeoutMs (HTTP/1.1: 408; HTTP/2: GOAWAY)
 *   rapid_reset       HTTP/2 streams reset by the client faster than allowed (GOAWAY)
 *   h2_stream_flood   HTTP/2 streams opened beyond the concurrency limit until nghttp2 ends
 *                     the session (GOAWAY)
 *   h2_protocol       another HTTP/2 protocol error by the client that ends its session (GOAWAY)
 *   not_http          a port where an L7 policy applies received bytes that are not HTTP (reset)
 *   bad_path          the path could not be normalized (400)
 */
export type HttpRefusalReason =
  | 'header_too_large' | 'too_many_headers' | 'smuggling' | 'invalid' | 'header_timeout'
  | 'rapid_reset' | 'h2_stream_flood' | 'h2_protocol' | 'not_http' | 'bad_path'

export interface HttpRefusals {
  refused (reason: HttpRefusalReason): void
}

/** Counts on `registry`; the counter is created once per registry. */
export function createHttpRefusals (registry: Registry): HttpRefusals {
  const existing = registry.getSingleMetric(HTTP_REFUSED_METRIC) as Counter<'reason'> | undefined
  const counter = existing ?? new Counter({
    name: HTTP_REFUSED_METRIC,
    help: 'HTTP connections or requests refused by the proxy, by reason (header_too_large, too_many_headers, smuggling, invalid, header_timeout, rapid_reset, h2_stream_flood, h2_protocol, not_http, bad_path)',
    labelNames: ['reason'],
    registers: [registry]
  })
  return { refused (reason) { counter.inc({ reason }) } }
}

/** Counts nothing (tests, or an engine without metrics). */
export const NO_REFUSALS: HttpRefusals = Object.freeze({ refused () {} })

export const L7_DETECTED_METRIC = 'ferry_l7_detected_total'

/** Outcomes of protocol detection on `detect` ports: http1 / http2 (L7), server_first / not_http (stayed L4). */
export type DetectOutcome = 'http1' | 'http2' | 'server_first' | 'not_http'

/** Counts detection outcomes on `registry` (created once per registry). */
export function createDetectCounter (registry: Registry): (outcome: DetectOutcome) => void {
  const existing = registry.getSingleMetric(L7_DETECTED_METRIC) as Counter<'outcome'> | undefined
  const counter = existing ?? new Counter({
    name: L7_DETECTED_METRIC,
    help: 'Connections to ports whose protocol is detected, by outcome (http1, http2: handled as HTTP; server_first, not_http: relayed as TCP)',
    labelNames: ['outcome'],
    registers: [registry]
  })
  return (outcome) => { counter.inc({ outcome }) }
}
