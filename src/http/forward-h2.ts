import { type ClientHttp2Session, type ClientHttp2Stream, constants, type IncomingHttpHeaders, type IncomingHttpStatusHeader, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { RequestSpan } from '../telemetry/request-tracing'
import { admitRequest, type Admission, DENIED_BODY, GRPC_INTERNAL, GRPC_PERMISSION_DENIED, GRPC_UNAVAILABLE } from './admit'
import { type HttpDownstream, isConnectFailure } from './context'
import type { HttpEngineDeps } from './engine'
import { H2Downstream } from './downstream-h2'
import { forwardRouted } from './forward-routed'
import { GRPC_RESOURCE_EXHAUSTED } from './grpc-status'
import { endToEndHeaders } from './hop-by-hop'
import { addRateLimitHeaders, RATE_LIMITED_BODY } from './rate-limit'
import { protocolOf, RequestState } from './record'

// One HTTP/2 stream, downstream to upstream (HTTP/2 both sides; gRPC is HTTP/2):
//   admit      admit.ts; refusals are answered here: gRPC as trailers-only responses
//              (PERMISSION_DENIED 7 for a denial, UNAVAILABLE 14 when no endpoint or the
//              upstream failed, INTERNAL 13 for a bad path), other HTTP/2 as 403/503/400
//   forward    a stream on the target's session (upstream-pool.ts); bodies streamed both
//              ways with HTTP/2 flow control as backpressure
//   response   headers (a trailers-only response stays trailers-only), DATA, trailers
//              (grpc-status, grpc-message…) passed on as trailers
//   failures   connect failed: 503 UF / UNAVAILABLE; upstream reset before the response:
//              503 UC / UNAVAILABLE; after it began: the downstream stream is reset with
//              the upstream's code, UC; the client reset its stream: the upstream stream
//              is cancelled, DC
// The request ends (record.ts) when the downstream stream closes.

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, HTTP2_HEADER_STATUS } = constants
const END_STREAM = 0x1

export function forwardH2 (deps: HttpEngineDeps, ds: HttpDownstream, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number): void {
  const authority = headers[':authority'] ?? headers.host ?? ''
  const st = new RequestState(deps, ds.reporter, ds.record, protocolOf(headers['content-type']), '2', headers[':method'] ?? 'GET', authority, headers[':path'] ?? '/')
  let upstream: ClientHttp2Stream | null = null
  stream.on('error', () => {})
  stream.once('close', () => {
    if (stream.rstCode !== NGHTTP2_NO_ERROR || !stream.writableFinished) {
      st.flag('DC')
      if (upstream !== null && !upstream.closed) upstream.close(NGHTTP2_CANCEL)
    }
    st.end()
  })
  const admission = admitRequest(st, ds, headers, st.path)
  if (admission !== 'forward') {
    if (admission === 'routed') {
      const grpc = st.protocol === 'grpc'
      forwardRouted({ deps, ds, st, down: new H2Downstream(stream, (flags & END_STREAM) !== 0 ? null : stream, grpc), headers, upstream: 'http2', grpc, onGone: (cb) => { stream.once('close', cb) } })
      return
    }
    if (admission === 'bad_path') deps.refusals.refused('bad_path')
    answerLocally(st, stream, admission)
    return
  }
  const target = st.target!
  const span = st.startSpan(headers)
  const out = upstreamHeaders(headers, st, span)
  if (target.local !== null) st.startLocalSpan(out as IncomingHttpHeaders)
  const endStream = (flags & END_STREAM) !== 0
  deps.pools.session(target, (err: Error | null, session: ClientHttp2Session | null) => {
    if (stream.closed || stream.destroyed) return
    if (err !== null || session === null) {
      st.flag(isConnectFailure(err) ? 'UF' : 'UC')
      unavailable(st, stream)
      return
    }
    let up: ClientHttp2Stream
    try {
      up = session.request(out, { endStream })
    } catch {
      st.flag('UC')
      unavailable(st, stream)
      return
    }
    upstream = up
    pass(st, stream, up, endStream)
  })
}

function pass (st: RequestState, stream: ServerHttp2Stream, up: ClientHttp2Stream, endStream: boolean): void {
  let trailers: OutgoingHttpHeaders | null = null
  let responded = false
  let ended = false
  up.on('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
    if (stream.closed) return
    responded = true
    st.responseCode = Number(h[HTTP2_HEADER_STATUS]) || 0
    const rh = responseHeaders(h)
    if (st.rateLimit !== null) addRateLimitHeaders(rh, st.rateLimit)
    if ((flags & END_STREAM) !== 0) {
      // Trailers-only (gRPC) or a response without a body.
      grpcStatusOf(st, h)
      stream.respond(rh, { endStream: true })
      return
    }
    stream.respond(rh, { waitForTrailers: true })
    up.on('data', (chunk: Buffer) => {
      st.responseBytes += chunk.length
      st.messages?.response.push(chunk)
    })
    // Ended on the upstream's clean close only: Node ends a reset stream's readable side too.
    up.pipe(stream, { end: false })
  })
  up.on('end', () => { ended = true })
  up.on('trailers', (t: IncomingHttpHeaders) => {
    grpcStatusOf(st, t)
    trailers = endToEndHeaders(t)
  })
  stream.on('wantTrailers', () => { stream.sendTrailers(trailers ?? {}) })
  up.on('error', () => {})
  up.once('close', () => {
    if (stream.closed) return
    if (up.rstCode === NGHTTP2_NO_ERROR && ended) {
      if (responded && !stream.writableEnded) stream.end()
      return
    }
    st.flag('UC')
    if (!responded && !stream.headersSent) unavailable(st, stream)
    else stream.close(up.rstCode === undefined || up.rstCode === NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : up.rstCode)
  })
  if (!endStream) {
    stream.on('data', (chunk: Buffer) => {
      st.requestBytes += chunk.length
      st.messages?.request.push(chunk)
    })
    stream.pipe(up)
  }
}

function grpcStatusOf (st: RequestState, h: IncomingHttpHeaders): void {
  const s = h['grpc-status']
  if (typeof s === 'string') st.grpcStatus = Number(s)
}

/** The forwarded stream's headers: pseudo-headers (path as admitted), end-to-end headers, the span's additions. */
function upstreamHeaders (headers: IncomingHttpHeaders, st: RequestState, span: RequestSpan): OutgoingHttpHeaders {
  const out = endToEndHeaders(headers)
  out[':method'] = st.method
  out[':path'] = st.path
  out[':scheme'] = headers[':scheme'] ?? 'http'
  if (st.authority !== '') out[':authority'] = st.authority
  for (const name of span.remove) delete out[name]
  const fwd = span.forward
  for (const name in fwd) out[name] = fwd[name]
  return out
}

function responseHeaders (h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out = endToEndHeaders(h)
  out[HTTP2_HEADER_STATUS] = h[HTTP2_HEADER_STATUS]
  return out
}

export function answerLocally (st: RequestState, stream: ServerHttp2Stream, admission: Exclude<Admission, 'forward' | 'routed'>): void {
  switch (admission) {
    case 'bad_path': answer(st, stream, 400, GRPC_INTERNAL, 'Bad Request'); return
    case 'denied': answer(st, stream, 403, GRPC_PERMISSION_DENIED, DENIED_BODY); return
    case 'no_upstream': answer(st, stream, 503, GRPC_UNAVAILABLE, 'no healthy upstream'); return
    case 'rate_limited': answer(st, stream, 429, GRPC_RESOURCE_EXHAUSTED, RATE_LIMITED_BODY)
  }
}

function unavailable (st: RequestState, stream: ServerHttp2Stream): void {
  answer(st, stream, 503, GRPC_UNAVAILABLE, 'upstream connect error or disconnect/reset before headers')
}

/** A response the proxy makes itself: gRPC trailers-only with `grpcStatus`, else `status` with a text body; the rate limit's headers when one applied. */
function answer (st: RequestState, stream: ServerHttp2Stream, status: number, grpcStatus: number, body: string): void {
  if (stream.closed || stream.headersSent) return
  const h: OutgoingHttpHeaders = st.rateLimit === null ? {} : addRateLimitHeaders({}, st.rateLimit)
  if (st.protocol === 'grpc') {
    st.responseCode = 200
    st.grpcStatus = grpcStatus
    h[HTTP2_HEADER_STATUS] = 200
    h['content-type'] = 'application/grpc'
    h['grpc-status'] = String(grpcStatus)
    h['grpc-message'] = body
    stream.respond(h, { endStream: true })
    return
  }
  st.responseCode = status
  st.responseBytes = Buffer.byteLength(body)
  h[HTTP2_HEADER_STATUS] = status
  h['content-type'] = 'text/plain'
  h['content-length'] = st.responseBytes
  stream.respond(h)
  stream.end(body)
}
