import { type ClientHttp2Session, type ClientHttp2Stream, constants, type IncomingHttpHeaders, type IncomingHttpStatusHeader, type OutgoingHttpHeaders } from 'node:http2'
import { isConnectFailure } from './context'
import type { StartUpstream, UpstreamCall } from './routed-io'

// One attempt of a routed request over HTTP/2: a stream on the target's pooled session
// (upstream-pool.ts), as forward-h2.ts opens one. Canceling (or discarding) resets the
// stream with CANCEL: the server sees the request canceled (a gRPC server's call
// context reports CANCELLED), the session stays for other streams.

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, HTTP2_HEADER_STATUS } = constants
const END_STREAM = 0x1

export const startH2: StartUpstream = (deps, target, head, events, ready, connections = null) => {
  let up: ClientHttp2Stream | null = null
  let quiet = false
  const out: OutgoingHttpHeaders = head.headers
  delete out.host
  out[':method'] = head.method
  out[':path'] = head.path
  out[':scheme'] = 'http'
  if (head.authority !== '') out[':authority'] = head.authority
  deps.pools.session(target, (err: Error | null, session: ClientHttp2Session | null) => {
    if (quiet) return
    if (err !== null || session === null) {
      quiet = true
      events.failed(isConnectFailure(err))
      return
    }
    let s: ClientHttp2Stream
    try {
      s = session.request(out, { endStream: !head.hasBody })
    } catch {
      quiet = true
      events.failed(false)
      return
    }
    up = s
    let ended = false
    s.on('error', () => {})
    s.on('continue', () => { if (!quiet) events.continue() })
    // DATA is read only once the response is out: Node emits 'response' on the next tick
    // while DATA that came in the same read is pushed at once, so a 'data' listener
    // attached from the start sees the body before the headers (and the client's stream
    // would answer a bare 200 of its own before the response's headers).
    s.on('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
      if (quiet) return
      events.response(Number(h[HTTP2_HEADER_STATUS]) || 502, h, (flags & END_STREAM) !== 0)
      s.on('data', (chunk: Buffer) => { if (!quiet) events.data(chunk) })
    })
    s.on('trailers', (t: IncomingHttpHeaders) => { if (!quiet) events.trailers(t) })
    s.on('end', () => { ended = true })
    s.once('close', () => {
      if (quiet) return
      quiet = true
      if (s.rstCode === NGHTTP2_NO_ERROR && ended) events.end()
      else events.failed(false)
    })
    if (head.hasBody) ready(s)
  }, connections)
  const call: UpstreamCall = {
    pause () { up?.pause() },
    resume () { up?.resume() },
    cancel () {
      quiet = true
      if (up !== null && !up.closed) up.close(NGHTTP2_CANCEL)
    },
    discard () { call.cancel() }
  }
  return call
}
