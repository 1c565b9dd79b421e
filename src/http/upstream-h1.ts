import { type IncomingMessage, type OutgoingHttpHeaders, request, type RequestOptions } from 'node:http'
import { isConnectFailure } from './context'
import type { StartUpstream, UpstreamCall } from './routed-io'

// One attempt of a routed request over HTTP/1.1: a request on the target's pooled
// keep-alive connections (upstream-pool.ts), as forward-h1.ts sends one. Canceling
// destroys the request (its connection closes: HTTP/1.1 has no other way to say so);
// discarding reads the unwanted response to its end, so its connection is reused.

export const startH1: StartUpstream = (deps, target, head, events, ready, connections = null) => {
  const headers: OutgoingHttpHeaders = head.headers
  if (head.authority !== '') headers.host = head.authority
  const opts: RequestOptions & { servername: string } = {
    agent: deps.pools.agent(target, connections),
    method: head.method,
    path: head.path,
    host: target.address.address,
    port: target.address.port,
    family: target.address.family,
    headers,
    setHost: false,
    servername: ''
  }
  const req = request(opts)
  let res: IncomingMessage | null = null
  let quiet = false
  req.on('continue', () => { if (!quiet) events.continue() })
  req.on('response', (r: IncomingMessage) => {
    res = r
    if (quiet) { r.resume(); return }
    // A response to a HEAD, or with no body, ends at once: 'end' still comes.
    events.response(r.statusCode ?? 502, r.headers, false)
    r.on('data', (chunk: Buffer) => { if (!quiet) events.data(chunk) })
    r.on('end', () => {
      if (quiet) return
      quiet = true
      if (r.rawTrailers.length > 0) events.trailers(r.trailers)
      events.end()
    })
    r.on('error', () => { if (!quiet) { quiet = true; events.failed(false) } })
    r.on('aborted', () => { if (!quiet) { quiet = true; events.failed(false) } })
  })
  req.on('error', (err) => {
    if (quiet) return
    quiet = true
    events.failed(isConnectFailure(err))
  })
  if (head.hasBody) ready(req)
  else req.end()
  const call: UpstreamCall = {
    pause () { res?.pause() },
    resume () { res?.resume() },
    cancel () {
      if (quiet && res?.complete === true) return
      quiet = true
      req.destroy()
    },
    discard () {
      quiet = true
      if (res === null) { req.destroy(); return }
      res.removeAllListeners('data')
      res.resume()
    }
  }
  return call
}
