import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { type ClientHttp2Session, type ClientHttp2Stream, constants, type IncomingHttpStatusHeader } from 'node:http2'
import { admitRequest, DENIED_BODY } from './admit'
import { type HttpDownstream, isConnectFailure } from './context'
import type { HttpEngineDeps } from './engine'
import { H1Downstream } from './downstream-h1'
import { answer, hasBody } from './forward-h1'
import { forwardRouted } from './forward-routed'
import { endToEndHeaders } from './hop-by-hop'
import { addRateLimitHeaders, RATE_LIMITED_BODY } from './rate-limit'
import { protocolOf, RequestState } from './record'

// One HTTP/1.1 request on a port declared HTTP/2, forwarded upstream over HTTP/2 (h2c
// with prior knowledge, the target's pooled session: upstream-pool.ts):
//   admit      admit.ts, refusals answered in HTTP/1.1 (400, 403, 503) as forward-h1.ts
//   headers    end-to-end headers only (hop-by-hop.ts drops Connection, Keep-Alive,
//              Proxy-Connection, Transfer-Encoding, Upgrade, TE but "trailers", and the
//              headers Connection names); Host becomes :authority; :scheme http; the
//              span's headers set. The body was framed by the HTTP/1.1 parser (which
//              refuses Content-Length with Transfer-Encoding): a Content-Length is passed
//              on and HTTP/2 checks it against the DATA sent
//   body       streamed up as DATA as it arrives, with backpressure both ways; Expect:
//              100-continue goes up and the upstream's 100 comes back
//   response   status and end-to-end headers; Node writes the HTTP/1.1 framing itself
//              (chunked when the upstream gave no content-length); body streamed,
//              trailers passed on (chunked responses carry them)
//   failures   as forward-h1.ts: connect failed 503 UF, reset before the response 503 UC,
//              after it the downstream connection is reset (UC); the client left: the
//              upstream stream is cancelled (DC)
// An Upgrade request (WebSocket) is not translated: forward-upgrade.ts sends it as
// HTTP/1.1 on a connection of its own.

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, HTTP2_HEADER_STATUS } = constants

export function forwardH1ToH2 (deps: HttpEngineDeps, ds: HttpDownstream, req: IncomingMessage, res: ServerResponse): void {
  const headers = req.headers
  const st = new RequestState(deps, ds.reporter, ds.record, protocolOf(headers['content-type']), '1.1', req.method ?? 'GET', headers.host ?? '', req.url ?? '/')
  let upstream: ClientHttp2Stream | null = null
  res.once('close', () => {
    if (!res.writableFinished) {
      st.flag('DC')
      if (upstream !== null && !upstream.closed) upstream.close(NGHTTP2_CANCEL)
    }
    st.end()
  })
  const admission = admitRequest(st, ds, headers, st.path)
  switch (admission) {
    case 'forward': break
    case 'bad_path': deps.refusals.refused('bad_path'); answer(st, res, 400, 'Bad Request'); return
    case 'denied': answer(st, res, 403, DENIED_BODY); return
    case 'no_upstream': answer(st, res, 503, 'no healthy upstream'); return
    case 'rate_limited': answer(st, res, 429, RATE_LIMITED_BODY); return
    case 'routed':
      forwardRouted({ deps, ds, st, down: new H1Downstream(req, res, hasBody(headers)), headers, upstream: 'http2', grpc: false, onGone: (cb) => { res.once('close', cb) } })
      return
  }
  const target = st.target!
  const span = st.startSpan(headers)
  const out = endToEndHeaders(headers)
  out[':method'] = st.method
  out[':path'] = st.path
  out[':scheme'] = 'http'
  if (st.authority !== '') out[':authority'] = st.authority
  for (const name of span.remove) delete out[name]
  const fwd = span.forward
  for (const name in fwd) out[name] = fwd[name]
  if (target.local !== null) st.startLocalSpan(out as IncomingHttpHeaders)
  const body = hasBody(headers)
  if (!body) req.resume()
  deps.pools.session(target, (err: Error | null, session: ClientHttp2Session | null) => {
    if (res.destroyed) return
    if (err !== null || session === null) {
      st.flag(isConnectFailure(err) ? 'UF' : 'UC')
      unavailable(st, res, isConnectFailure(err))
      return
    }
    let up: ClientHttp2Stream
    try {
      up = session.request(out, { endStream: !body })
    } catch {
      st.flag('UC')
      unavailable(st, res, false)
      return
    }
    upstream = up
    pass(st, req, res, up, body)
  })
}

function pass (st: RequestState, req: IncomingMessage, res: ServerResponse, up: ClientHttp2Stream, body: boolean): void {
  let ended = false
  up.on('continue', () => { res.writeContinue() })
  up.on('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
    if (res.destroyed) return
    const status = Number(h[HTTP2_HEADER_STATUS]) || 502
    st.responseCode = status
    const rh = endToEndHeaders(h)
    if (st.rateLimit !== null) addRateLimitHeaders(rh, st.rateLimit)
    res.writeHead(status, rh)
    up.on('data', (chunk: Buffer) => {
      st.responseBytes += chunk.length
      if (res.destroyed) return
      if (!res.write(chunk)) {
        up.pause()
        res.once('drain', () => { up.resume() })
      }
    })
  })
  up.on('trailers', (t: IncomingHttpHeaders) => {
    if (!res.destroyed) res.addTrailers(endToEndHeaders(t) as OutgoingHttpHeaders)
  })
  up.on('end', () => { ended = true })
  up.on('error', () => {})
  up.once('close', () => {
    if (res.destroyed || res.writableEnded) return
    if (up.rstCode === NGHTTP2_NO_ERROR && ended && res.headersSent) {
      res.end()
      return
    }
    st.flag('UC')
    if (res.headersSent) res.destroy()
    else unavailable(st, res, false)
  })
  if (body) {
    req.on('data', (chunk: Buffer) => { st.requestBytes += chunk.length })
    req.pipe(up)
  }
}

function unavailable (st: RequestState, res: ServerResponse, connectFailed: boolean): void {
  answer(st, res, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${connectFailed ? 'connection failure' : 'connection termination'}`)
}


