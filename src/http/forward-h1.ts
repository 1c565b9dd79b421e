import { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, request, type RequestOptions, type ServerResponse } from 'node:http'
import { admitRequest, type Admission, DENIED_BODY } from './admit'
import { type HttpDownstream, isConnectFailure } from './context'
import type { HttpEngineDeps } from './engine'
import { H1Downstream } from './downstream-h1'
import { forwardRouted } from './forward-routed'
import { endToEndHeaders } from './hop-by-hop'
import { addRateLimitHeaders, RATE_LIMITED_BODY } from './rate-limit'
import { protocolOf, RequestState } from './record'
import type { RequestSpan } from '../telemetry/request-tracing'

// One HTTP/1.1 request, downstream to upstream (HTTP/1.1 both sides):
//   admit      admit.ts (normalize, authorize, pick, same-node authorize); refusals are
//              answered here: 400, 403 "RBAC: access denied", 503 "no healthy upstream"
//   headers    end-to-end headers only (hop-by-hop.ts), Host kept, the span's headers set
//              and its stale ones removed
//   forward    on the target's pooled keep-alive connections (upstream-pool.ts); the
//              request body streams up as it arrives (pipe: backpressure both ways);
//              `Expect: 100-continue` goes up and the upstream's 100 comes back
//   response   status and end-to-end headers, body streamed, trailers passed on
//   failures   connect failed: 503 UF; upstream reset before the response: 503 UC; after
//              it began: the downstream connection is reset (HTTP/1.1 has no other way
//              to say a body is cut), UC; the client left: the upstream request is
//              aborted, DC
// The request ends (record.ts) when the downstream response closes, whichever way.

const LOCAL_TEXT = 'text/plain'

export function forwardH1 (deps: HttpEngineDeps, ds: HttpDownstream, req: IncomingMessage, res: ServerResponse): void {
  const headers = req.headers
  const st = new RequestState(deps, ds.reporter, ds.record, protocolOf(headers['content-type']), '1.1', req.method ?? 'GET', headers.host ?? '', req.url ?? '/')
  let up: ReturnType<typeof request> | null = null
  res.once('close', () => {
    if (!res.writableFinished) {
      st.flag('DC')
      up?.destroy()
    }
    st.end()
  })
  const admission = admitRequest(st, ds, headers, st.path)
  if (admission !== 'forward') {
    if (admission === 'routed') {
      forwardRouted({ deps, ds, st, down: new H1Downstream(req, res, hasBody(headers)), headers, upstream: 'http1', grpc: false, onGone: (cb) => { res.once('close', cb) } })
      return
    }
    if (admission === 'bad_path') deps.refusals.refused('bad_path')
    answerLocally(st, res, admission)
    return
  }
  const target = st.target!
  const span = st.startSpan(headers)
  const out = upstreamHeaders(headers, span)
  if (target.local !== null) st.startLocalSpan(out as IncomingHttpHeaders)
  up = request(upstreamOptions(deps, st, out))
  up.on('continue', () => { res.writeContinue() })
  up.on('response', (upres: IncomingMessage) => {
    const status = upres.statusCode ?? 502
    st.responseCode = status
    const rh = endToEndHeaders(upres.headers)
    if (st.rateLimit !== null) addRateLimitHeaders(rh, st.rateLimit)
    res.writeHead(status, upres.statusMessage, rh)
    // The body by hand rather than pipe(): the same backpressure (pause until the
    // downstream drains) with two listeners instead of pipe's seven per request.
    upres.on('data', (chunk: Buffer) => {
      st.responseBytes += chunk.length
      if (res.destroyed) return
      if (!res.write(chunk)) {
        upres.pause()
        res.once('drain', () => { upres.resume() })
      }
    })
    upres.on('end', () => {
      if (res.destroyed) return
      if (upres.rawTrailers.length > 0) res.addTrailers(upres.trailers)
      res.end()
    })
    upres.on('error', () => {
      st.flag('UC')
      res.destroy()
    })
  })
  up.on('error', (err) => {
    if (res.destroyed) return
    if (res.headersSent) {
      st.flag('UC')
      res.destroy()
      return
    }
    const failed = isConnectFailure(err)
    st.flag(failed ? 'UF' : 'UC')
    answer(st, res, 503, failed ? 'upstream connect error or disconnect/reset before headers. reset reason: connection failure' : 'upstream connect error or disconnect/reset before headers. reset reason: connection termination')
  })
  if (hasBody(headers)) {
    req.on('data', (chunk: Buffer) => { st.requestBytes += chunk.length })
    req.pipe(up)
  } else {
    // No body (RFC 9112 §6.3: neither Content-Length nor Transfer-Encoding): the request
    // is complete with its headers; ending it at once spares a pipe per request.
    req.resume()
    up.end()
  }
}

/** Whether an HTTP/1.1 request has a body to stream up (or may have one: Expect: 100-continue). */
/**
 * The options of one HTTP/1.1 request to the request's target over its pool's Agent
 * (also used by the HTTP/2 → HTTP/1.1 translation). Plain HTTP: no TLS server name to
 * derive from the Host header (the Agent would parse it on every request otherwise).
 */
export function upstreamOptions (deps: HttpEngineDeps, st: RequestState, headers: OutgoingHttpHeaders): RequestOptions {
  const target = st.target!
  const opts: RequestOptions & { servername: string } = {
    agent: deps.pools.agent(target),
    method: st.method,
    path: st.path,
    host: target.address.address,
    port: target.address.port,
    family: target.address.family,
    headers,
    setHost: false,
    servername: ''
  }
  return opts
}

export function hasBody (headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || headers.expect !== undefined ||
    (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

/** The forwarded request's headers: end-to-end ones, Host, the span's additions. */
function upstreamHeaders (headers: IncomingHttpHeaders, span: RequestSpan): OutgoingHttpHeaders {
  const out = endToEndHeaders(headers)
  if (headers.host !== undefined) out.host = headers.host
  for (const name of span.remove) delete out[name]
  const fwd = span.forward
  for (const name in fwd) out[name] = fwd[name]
  return out
}

function answerLocally (st: RequestState, res: ServerResponse, admission: Exclude<Admission, 'forward' | 'routed'>): void {
  switch (admission) {
    case 'bad_path': answer(st, res, 400, 'Bad Request'); return
    case 'denied': answer(st, res, 403, DENIED_BODY); return
    case 'no_upstream': answer(st, res, 503, 'no healthy upstream'); return
    case 'rate_limited': answer(st, res, 429, RATE_LIMITED_BODY)
  }
}

/** A response the proxy makes itself (with the rate limit's headers when one applied). */
export function answer (st: RequestState, res: ServerResponse, status: number, body: string): void {
  if (res.headersSent || res.destroyed) return
  st.responseCode = status
  st.responseBytes = Buffer.byteLength(body)
  const h: OutgoingHttpHeaders = { 'content-type': LOCAL_TEXT, 'content-length': st.responseBytes }
  if (st.rateLimit !== null) addRateLimitHeaders(h, st.rateLimit)
  res.writeHead(status, h)
  res.end(body)
}
