import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy
// consumes them and never forwards them; so are the headers the Connection header names.
// HTTP/2 forbids them outright (RFC 9113 §8.2.2); `te` may only be "trailers" there.
// Node's HTTP stacks write their own framing (content-length / transfer-encoding,
// connection, keep-alive) for the hop they serve.

const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade',
  'te', 'trailer', 'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'host'
])

/**
 * Copies the end-to-end headers of `h` into a new object (host excluded: the caller
 * sets the authority for the next hop). `te: trailers` is kept (gRPC needs it).
 */
export function endToEndHeaders (h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  // Node joins a repeated Connection header into one string, but a header object may hold
  // it as a list (or as anything, built by other code): every form names headers.
  const named: unknown = h.connection
  const text = typeof named === 'string' ? named : Array.isArray(named) ? named.join(',') : undefined
  const extra = text === undefined ? null : text.toLowerCase().split(',').map((s) => s.trim())
  for (const k in h) {
    if (HOP_BY_HOP.has(k) || k.charCodeAt(0) === 58 /* ':' */) {
      if (k === 'te' && String(h.te).toLowerCase() === 'trailers') out.te = 'trailers'
      continue
    }
    if (extra !== null && extra.includes(k)) continue
    out[k] = h[k]
  }
  return out
}
