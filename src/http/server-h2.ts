import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { RelayEnd } from '../proxy/relay'
import type { HttpDownstream } from './context'
import type { HttpEngineDeps } from './engine'
import { forwardH2 } from './forward-h2'
import { forwardH2ToH1 } from './forward-h2-to-h1'
import type { HttpRefusalReason } from './refusals'

// Downstream HTTP/2 with prior knowledge (h2c, gRPC): Node's own HTTP/2 server (nghttp2)
// takes each connection the engine hands it; one server object serves every connection.
// Each stream goes to forward-h2.ts (forward-h2-to-h1.ts on a port declared HTTP/1.1). Limits, each closing the connection with GOAWAY and
// a counted reason, other connections untouched:
//   SETTINGS_MAX_CONCURRENT_STREAMS = maxConcurrentStreams; a client that keeps opening
//   streams beyond it (maxRefusedStreams refused) has its session ended by nghttp2 →
//   h2_stream_flood (Node reports every nghttp2 session error alike, so a session error
//   while the client holds all the streams it may is taken for the flood)
//   streams the client resets before their response, more than maxResetsPerSecond in a
//   second (CVE-2023-44487) → rapid_reset
//   a header list over maxHeaderBytes or maxHeaders fields: that stream is refused
//   (nghttp2), the connection lives
//   other protocol errors by the client (nghttp2 ends the session) → h2_protocol
//   a header block not complete within headerTimeoutMs (slowloris), or no first stream
//   within headerTimeoutMs of the connection (a preface, SETTINGS, then nothing) →
//   header_timeout. nghttp2 tells when a HEADERS frame began (session.state's
//   lastProcStreamID) and Node emits the stream once its headers are complete; a block
//   seen begun and still incomplete at two checks headerTimeoutMs apart is refused, so
//   headers get between one and two headerTimeoutMs (as HTTP/1.1's). A stream refused
//   for its header list also stays begun: its connection ends the same way unless the
//   client opens another stream in time.
// Idle (no stream) for idleTimeoutMs: closed with GOAWAY.

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = constants

class H2Conn {
  private windowStart = 0
  private resets = 0
  refusedStreams = 0
  private refused = false
  /** Streams the session delivered and has not closed (frozen once the session is destroyed). */
  open = 0
  /** The highest stream id whose headers arrived complete; 0 before the first. */
  private lastComplete = 0
  /** The begun, incomplete header block seen at the last check (its stream id, 0: no first stream yet), or -1. */
  private watched = 0
  private readonly headerTimer: NodeJS.Timeout

  /** `toH1`: the port is declared HTTP/1.1, its streams go upstream over HTTP/1.1. */
  constructor (readonly downstream: HttpDownstream, readonly session: Http2Session, private readonly deps: HttpEngineDeps, readonly toH1: boolean) {
    this.headerTimer = setInterval(() => { this.checkHeaders() }, deps.limits.headerTimeoutMs)
    session.once('close', () => { clearInterval(this.headerTimer) })
    session.on('stream', (stream: ServerHttp2Stream) => { this.streamOpened(stream) })
  }

  /**
   * Every stream the session delivers, bound to this session (a stream delivered in the
   * same read as the error that ends its session comes without its `session`). Streams
   * closed by the session's end stay counted, so `open` at the session's error says how
   * many the client held.
   */
  private streamOpened (stream: ServerHttp2Stream): void {
    this.open++
    const id = stream.id ?? 0
    if (id > this.lastComplete) this.lastComplete = id
    stream.once('close', () => { if (!this.session.destroyed) this.open-- })
  }

  /** Refuses the connection when the same header block was pending at the previous check too. */
  private checkHeaders (): void {
    if (this.session.destroyed) return
    const begun = this.session.state.lastProcStreamID ?? 0
    const pending = this.lastComplete === 0 ? begun : begun > this.lastComplete ? begun : -1
    if (pending !== -1 && pending === this.watched) {
      this.refuse('header_timeout')
      return
    }
    this.watched = pending
  }

  /** A stream the client reset before its response: counted against the per-second budget. */
  clientReset (): void {
    if (this.session.destroyed) return
    const now = this.deps.clock()
    if (now - this.windowStart >= 1000) {
      this.windowStart = now
      this.resets = 0
    }
    if (++this.resets > this.deps.limits.maxResetsPerSecond) this.refuse('rapid_reset')
  }

  /** Counts `reason` once per connection; ends the session unless its error already did. */
  refuse (reason: HttpRefusalReason): void {
    if (this.refused) return
    this.refused = true
    this.deps.refusals.refused(reason)
    const s = this.session
    if (s.destroyed) return
    s.goaway(NGHTTP2_ENHANCE_YOUR_CALM)
    s.destroy()
  }
}

export class H2Server {
  private readonly server: Http2Server
  private readonly conns = new WeakMap<Http2Session, H2Conn>()
  /** The downstream of the connection being handed to the server (its 'session' event is synchronous). */
  private handing: HttpDownstream | null = null
  private handingToH1 = false

  private readonly maxStreams: number

  constructor (deps: HttpEngineDeps) {
    const { limits } = deps
    this.maxStreams = limits.maxConcurrentStreams
    const server = createServer({
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes, enablePush: false },
      maxHeaderListPairs: limits.maxHeaders + 4,
      maxSessionRejectedStreams: limits.maxRefusedStreams,
      maxSessionInvalidFrames: 1000
    })
    server.on('session', (session: Http2Session) => {
      const ds = this.handing
      if (ds === null) { session.destroy(); return }
      const c = new H2Conn(ds, session, deps, this.handingToH1)
      this.conns.set(session, c)
      session.setTimeout(limits.idleTimeoutMs, () => { session.close() })
      session.on('error', (err: NodeJS.ErrnoException) => { this.onSessionError(c, err) })
    })
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
      // A stream already reset when delivered (its headers and its reset in one read: a
      // Content-Length its DATA broke) has lost its session and has its error pending:
      // it must find a listener here or it would be thrown.
      stream.on('error', ignore)
      const c = this.conns.get(stream.session as Http2Session)
      if (c === undefined) { stream.close(NGHTTP2_ENHANCE_YOUR_CALM); return }
      stream.once('close', () => {
        if (stream.rstCode !== NGHTTP2_NO_ERROR && !stream.headersSent) c.clientReset()
      })
      if (c.toH1) forwardH2ToH1(deps, c.downstream, stream, headers, flags)
      else forwardH2(deps, c.downstream, stream, headers, flags)
    })
    server.on('sessionError', () => {})
    this.server = server
  }

  /** `resume` false: `end` has bytes put back that the session drains itself (declared.ts). */
  serve (end: RelayEnd, downstream: HttpDownstream, toH1 = false, resume = true): void {
    // The session owns the connection: the client's FIN ends it.
    end.allowHalfOpen = false
    this.handing = downstream
    this.handingToH1 = toH1
    try {
      this.server.emit('connection', end)
    } finally {
      this.handing = null
    }
    if (resume) end.resume()
  }

  private onSessionError (c: H2Conn, err: NodeJS.ErrnoException): void {
    switch (err.code) {
      case 'ERR_HTTP2_SESSION_ERROR':
      case 'ERR_HTTP2_ERROR':
        c.refuse(c.open >= this.maxStreams ? 'h2_stream_flood' : 'h2_protocol')
        return
      case 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES':
        c.refuse('h2_protocol')
    }
  }
}

function ignore (): void {}
