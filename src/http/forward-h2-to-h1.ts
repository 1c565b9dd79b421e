import { type IncomingMessage, type OutgoingHttpHeaders, request } from 'node:http'
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { admitRequest, DENIED_BODY } from './admit'
import { type HttpDownstream, isConnectFailure } from './context'
import type { HttpEngineDeps } from './engine'
import { upstreamOptions } from './forward-h1'
import { H2Downstream } from './downstream-h2'
import { forwardRouted } from './forward-routed'
import { endToEndHeaders } from './hop-by-hop'
import { addRateLimitHeaders, RATE_LIMITED_BODY } from './rate-limit'
import { protocolOf, RequestState } from './record'

// One HTTP/2 stream on a port declared HTTP/1.1, forwarded upstream over HTTP/1.1 (the
// target's pooled keep-alive connections: upstream-pool.ts):
//   refused    a request HTTP/2 calls malformed (RFC 9113 §8.2.2): a connection-specific
//              header (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
//              Upgrade) or a TE other than "trailers" — the stream is reset
//              (PROTOCOL_ERROR) and counted `smuggling`; nghttp2 refuses most of them
//              first, this holds whatever reaches here. CONNECT is answered 405
//   admit      admit.ts, refusals answered as forward-h2.ts does for plain HTTP/2
//   headers    end-to-end headers; :authority becomes Host; no TE (hop-by-hop in
//              HTTP/1.1); never a Transfer-Encoding from the client: Node frames the body
//              upstream itself — the client's Content-Length when it gave one (HTTP/2
//              resets a stream whose DATA do not match it before passing on the excess,
//              and the reset aborts the upstream request), chunked otherwise
//   body       DATA streamed up as it arrives, with backpressure both ways
//   response   :status and end-to-end headers (the HTTP/1.1 framing and connection
//              headers dropped), body streamed, trailers passed on as HTTP/2 trailers
//   failures   connect failed 503 UF, reset before the response 503 UC, after it the
//              downstream stream is reset (INTERNAL_ERROR, UC); the client reset its
//              stream: the upstream request is aborted (its connection is not reused), DC

const { NGHTTP2_NO_ERROR, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_INTERNAL_ERROR, HTTP2_HEADER_STATUS } = constants
const END_STREAM = 0x1
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']

export function forwardH2ToH1 (deps: HttpEngineDeps, ds: HttpDownstream, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number): void {
  stream.on('error', () => {})
  if (malformed(headers)) {
    deps.refusals.refused('smuggling')
    stream.close(NGHTTP2_PROTOCOL_ERROR)
    return
  }
  const authority = headers[':authority'] ?? headers.host ?? ''
  const st = new RequestState(deps, ds.reporter, ds.record, protocolOf(headers['content-type']), '2', headers[':method'] ?? 'GET', authority, headers[':path'] ?? '/')
  let up: ReturnType<typeof request> | null = null
  stream.once('close', () => {
    if (stream.rstCode !== NGHTTP2_NO_ERROR || !stream.writableFinished) {
      st.flag('DC')
      up?.destroy()
    }
    st.end()
  })
  if (st.method === 'CONNECT') { answer(st, stream, 405, 'Method Not Allowed'); return }
  const admission = admitRequest(st, ds, headers, st.path)
  switch (admission) {
    case 'forward': break
    case 'bad_path': deps.refusals.refused('bad_path'); answer(st, stream, 400, 'Bad Request'); return
    case 'denied': answer(st, stream, 403, DENIED_BODY); return
    case 'no_upstream': answer(st, stream, 503, 'no healthy upstream'); return
    case 'rate_limited': answer(st, stream, 429, RATE_LIMITED_BODY); return
    case 'routed':
      forwardRouted({ deps, ds, st, down: new H2Downstream(stream, (flags & END_STREAM) !== 0 ? null : stream, false), headers, upstream: 'http1', grpc: false, onGone: (cb) => { stream.once('close', cb) } })
      return
  }
  const target = st.target!
  const span = st.startSpan(headers)
  const out = endToEndHeaders(headers)
  delete out.te
  if (authority !== '') out.host = authority
  for (const name of span.remove) delete out[name]
  const fwd = span.forward
  for (const name in fwd) out[name] = fwd[name]
  if (target.local !== null) st.startLocalSpan(out as IncomingHttpHeaders)
  const req = request(upstreamOptions(deps, st, out))
  up = req
  req.on('response', (upres: IncomingMessage) => {
    if (stream.closed) { upres.resume(); return }
    const status = upres.statusCode ?? 502
    st.responseCode = status
    const rh = endToEndHeaders(upres.headers)
    rh[HTTP2_HEADER_STATUS] = status
    if (st.rateLimit !== null) addRateLimitHeaders(rh, st.rateLimit)
    stream.respond(rh, { waitForTrailers: true })
    stream.on('wantTrailers', () => {
      stream.sendTrailers(upres.rawTrailers.length > 0 ? endToEndHeaders(upres.trailers) : {})
    })
    upres.on('data', (chunk: Buffer) => {
      st.responseBytes += chunk.length
      if (stream.closed) return
      if (!stream.write(chunk)) {
        upres.pause()
        stream.once('drain', () => { upres.resume() })
      }
    })
    upres.on('end', () => { if (!stream.closed) stream.end() })
    upres.on('error', () => {
      st.flag('UC')
      if (!stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR)
    })
  })
  req.on('error', (err) => {
    if (stream.closed) return
    if (stream.headersSent) {
      st.flag('UC')
      stream.close(NGHTTP2_INTERNAL_ERROR)
      return
    }
    const failed = isConnectFailure(err)
    st.flag(failed ? 'UF' : 'UC')
    answer(st, stream, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${failed ? 'connection failure' : 'connection termination'}`)
  })
  if ((flags & END_STREAM) !== 0) {
    req.end()
    return
  }
  stream.on('data', (chunk: Buffer) => { st.requestBytes += chunk.length })
  stream.pipe(req)
}

/** RFC 9113 §8.2.2: connection-specific header fields, or a TE other than "trailers". */
function malformed (headers: IncomingHttpHeaders): boolean {
  for (const name of CONNECTION_SPECIFIC) if (headers[name] !== undefined) return true
  const te = headers.te
  return te !== undefined && String(te).trim().toLowerCase() !== 'trailers'
}

/** A response the proxy makes itself (with the rate limit's headers when one applied). */
function answer (st: RequestState, stream: ServerHttp2Stream, status: number, body: string): void {
  if (stream.closed || stream.headersSent) return
  st.responseCode = status
  st.responseBytes = Buffer.byteLength(body)
  const h: OutgoingHttpHeaders = st.rateLimit === null ? {} : addRateLimitHeaders({}, st.rateLimit)
  h[HTTP2_HEADER_STATUS] = status
  h['content-type'] = 'text/plain'
  h['content-length'] = st.responseBytes
  stream.respond(h)
  stream.end(body)
}
