import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RelayEnd } from '../proxy/relay'
import type { HttpDownstream } from './context'
import type { HttpEngineDeps } from './engine'
import { forwardH1 } from './forward-h1'
import { forwardH1ToH2 } from './forward-h1-to-h2'
import { forwardUpgrade } from './forward-upgrade'
import { type HttpRefusalReason } from './refusals'

// Downstream HTTP/1.1: Node's own HTTP server (llhttp, strict) parses each connection the
// engine hands it; one server object serves every connection (none listens). Per
// connection:
//   requests     one at a time, keep-alive, pipelining as Node does it; each goes to
//                forward-h1.ts (Expect: 100-continue too: the upstream's 100 is passed on),
//                or forward-h1-to-h2.ts on a port declared HTTP/2 (upstream over HTTP/2)
//   Upgrade      forward-upgrade.ts: the request goes to an endpoint on a connection of
//                its own, then both ways as a byte tunnel (WebSocket)
//   limits       parse errors end the connection with a status and a counted reason:
//                header bytes over maxHeaderBytes → 431 header_too_large; Content-Length
//                with Transfer-Encoding, or two Content-Lengths → 400 smuggling; any other
//                malformed request → 400 invalid; more than maxHeaders fields → 431
//                too_many_headers; headers not complete in time → 408 header_timeout
//   idle         no request in flight for idleTimeoutMs: closed (no response)
// The header timer is one timer per connection, re-armed, never one per request: a
// request's headers get between one and two headerTimeoutMs from their first byte.

const CLOSE_RESPONSES: Readonly<Record<number, Buffer>> = Object.freeze({
  400: Buffer.from('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'),
  408: Buffer.from('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'),
  431: Buffer.from('HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
})

/** llhttp's error codes (err.code of 'clientError') by refusal reason. */
function refusalOf (code: string | undefined): { status: number, reason: HttpRefusalReason } | null {
  switch (code) {
    case 'ECONNRESET': case 'EPIPE': case 'HPE_CLOSED_CONNECTION': case undefined: return null
    case 'HPE_HEADER_OVERFLOW': return { status: 431, reason: 'header_too_large' }
    case 'HPE_UNEXPECTED_CONTENT_LENGTH': case 'HPE_INVALID_TRANSFER_ENCODING': return { status: 400, reason: 'smuggling' }
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { status: 408, reason: 'header_timeout' }
    default: return code.startsWith('HPE_') ? { status: 400, reason: 'invalid' } : null
  }
}

/** One downstream HTTP/1.1 connection's state. */
export class H1Conn {
  inFlight = 0
  private armedAt = 0
  private armedBytes = 0
  private partial = false
  private refused = false
  private readonly timer: NodeJS.Timeout
  /** Bound once per connection: a response closed. */
  readonly responseClosed = (): void => {
    if (--this.inFlight === 0) this.arm()
  }

  /** `toH2`: the port is declared HTTP/2, its requests go upstream over HTTP/2. */
  constructor (readonly end: RelayEnd, readonly downstream: HttpDownstream, private readonly deps: HttpEngineDeps, readonly toH2 = false) {
    this.timer = setTimeout(() => { this.onTimer() }, deps.limits.headerTimeoutMs)
    this.armedAt = deps.clock()
    end.once('close', () => { clearTimeout(this.timer) })
  }

  requestStarted (): void {
    this.inFlight++
    this.partial = false
  }

  /** Refuses the connection: `status` written raw (when it can still be), counted, closed. */
  refuse (status: number, reason: HttpRefusalReason): void {
    if (this.refused) return
    this.refused = true
    this.deps.refusals.refused(reason)
    clearTimeout(this.timer)
    const end = this.end
    if (end.writable) end.end(CLOSE_RESPONSES[status] ?? CLOSE_RESPONSES[400])
    setTimeout(() => { end.destroy() }, 1000).unref()
  }

  private arm (): void {
    this.armedAt = this.deps.clock()
    this.armedBytes = this.end.bytesRead
    this.partial = false
    this.timer.refresh()
  }

  private onTimer (): void {
    if (this.inFlight > 0 || this.end.destroyed) return
    if (this.end.bytesRead > this.armedBytes) {
      // A request has begun and its headers are not complete.
      if (!this.partial) {
        this.partial = true
        this.timer.refresh()
        return
      }
      this.refuse(408, 'header_timeout')
      return
    }
    if (this.deps.clock() - this.armedAt >= this.deps.limits.idleTimeoutMs) {
      this.end.destroy()
      return
    }
    this.timer.refresh()
  }
}

export class H1Server {
  private readonly server: Server
  private readonly conns = new WeakMap<object, H1Conn>()

  constructor (private readonly deps: HttpEngineDeps) {
    const { limits } = deps
    const server = createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      requireHostHeader: false,
      requestTimeout: 0,
      headersTimeout: 0,
      keepAliveTimeout: 0,
      noDelay: true
    } as Parameters<typeof createServer>[0])
    server.maxHeadersCount = limits.maxHeaders + 1
    server.timeout = 0
    server.keepAliveTimeout = 0
    server.on('request', (req: IncomingMessage, res: ServerResponse) => { this.onRequest(req, res) })
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => { this.onRequest(req, res) })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const c = this.conns.get(socket)
      if (c === undefined) { socket.destroy(); return }
      forwardUpgrade(this.deps, c, req, head)
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const c = this.conns.get(socket)
      const r = refusalOf(err.code)
      if (c === undefined || r === null) { socket.destroy(); return }
      c.refuse(r.status, r.reason)
    })
    this.server = server
  }

  serve (end: RelayEnd, downstream: HttpDownstream, toH2 = false): void {
    const c = new H1Conn(end, downstream, this.deps, toH2)
    this.conns.set(end, c)
    this.server.emit('connection', end)
    end.resume()
  }

  private onRequest (req: IncomingMessage, res: ServerResponse): void {
    const c = this.conns.get(req.socket)
    if (c === undefined) { req.socket.destroy(); return }
    if (req.rawHeaders.length > 2 * this.deps.limits.maxHeaders) {
      c.refuse(431, 'too_many_headers')
      return
    }
    c.requestStarted()
    res.once('close', c.responseClosed)
    if (c.toH2) forwardH1ToH2(this.deps, c.downstream, req, res)
    else forwardH1(this.deps, c.downstream, req, res)
  }
}
