import { type ClientHttp2Session, type ClientHttp2Stream, constants, type IncomingHttpHeaders } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Svid } from '../identity/svid'
import { trace } from '../telemetry/trace'
import { setLongTimer, type LongTimer } from '../util/long-timer'
import { dialTunnel } from './client-dial'
import type { OpenAttempt } from './open-attempt'
import type { PoolSettings } from './options'
import { errorDetail, TunnelError } from './refusal'
import { noRoomDetail, SessionBuffers, stallResetDetail } from './session-buffers'
import { closeSession, watchSession } from './session-watch'
import { h2CodeName, TunnelStream } from './tunnel-stream'

// One pooled tunnel session: a verified TLS connection to a peer node carrying many
// CONNECT streams, for one (source identity, destination identity, node) key.
//
//   connecting  dialling; opens queue here up to the local stream cap
//   ready       the server's SETTINGS are in: capacity = min(our cap, its
//               MAX_CONCURRENT_STREAMS); queued opens start, any excess goes back to the pool
//   draining    GOAWAY received, its SVID was rotated out, or one of the two certificates
//               it was made with expired (ours or the peer's): no new streams, open ones
//               finish, then it closes
//   closed      gone; the pool forgets it
//
// Each stream reserves room in the node's buffer budget (buffer-budget.ts) before its
// HEADERS go out; without room (and no smaller window on its way) the open fails with
// FERRY_ERR_TUNNEL_BUSY `buffer-budget`. The session's first SETTINGS announce the window
// the budget allows at the time (client-dial.ts).
// A CONNECT answered 200 becomes a TunnelStream; any other status is FERRY_ERR_TUNNEL_REFUSED.
// A stream refused before its answer (REFUSED_STREAM, above a GOAWAY's last stream id, or
// its session lost) is handed back to the pool for one retry elsewhere.

const TRACE = trace('tunnel')
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = constants

export type SessionState = 'connecting' | 'ready' | 'draining' | 'closed'

export interface SessionHooks {
  /** Queued opens over the capacity the server announced: place them elsewhere (not a retry). */
  readonly overflow: (attempts: OpenAttempt[]) => void
  /** An open refused before its answer (REFUSED_STREAM, GOAWAY): retry it elsewhere, once. */
  readonly retry: (attempt: OpenAttempt, cause: TunnelError) => void
  /** The session is closed; forget it. */
  readonly closed: (session: PooledSession) => void
}

export class PooledSession {
  /** The pool's count of sessions made when this one was (a retry takes only sessions made after its refusal). */
  seq = 0
  state: SessionState = 'connecting'
  /** Streams requested and not yet closed. */
  active = 0
  /** Streams this session may carry at once. */
  capacity: number
  private h2: ClientHttp2Session | null = null
  private queue: OpenAttempt[] = []
  private cancelDial: (() => void) | null = null
  private everReady = false
  private peerCertSerial = ''
  private socket: TLSSocket | null = null
  private buffers: SessionBuffers | null = null
  /** Opens waiting for buffer room (a window change in flight). */
  private waiting: OpenAttempt[] = []
  private expiry: LongTimer | null = null

  constructor (readonly key: string, readonly svid: Svid, readonly expected: string, readonly node: { readonly address: string, readonly port: number },
    readonly remote: string, private readonly s: PoolSettings, private readonly hooks: SessionHooks, capacityGuess: number) {
    // Until the server's SETTINGS arrive: what a sibling session learned, else our cap.
    this.capacity = Math.min(capacityGuess, s.maxStreamsPerSession)
  }

  /** Opens queued or active plus queued, against capacity. */
  hasRoom (): boolean {
    if (this.state === 'connecting') this.queue = this.queue.filter((a) => !a.settled)
    // A session being torn down may not have said 'close' yet.
    if (this.h2 !== null && (this.h2.destroyed || this.h2.closed)) return false
    return (this.state === 'connecting' || this.state === 'ready') && this.active + this.queue.length + this.waiting.length < this.capacity
  }

  connect (): void {
    dialTunnel(this.node, this.remote, this.svid, this.expected, this.s, (cancel) => { this.cancelDial = cancel })
      .then(({ session, socket, peerCertSerial, peerValidUntil, initialWindow }) => {
        this.cancelDial = null
        this.peerCertSerial = peerCertSerial
        this.socket = socket
        this.attach(session, initialWindow, Math.min(peerValidUntil, this.svid.notAfter))
      },
        (err: TunnelError) => { this.cancelDial = null; this.close(err) })
  }

  add (a: OpenAttempt): void {
    if (this.state === 'ready') this.start(a)
    else this.queue.push(a)
  }

  /** No new streams; close once the open ones are done. */
  drain (): void {
    if (this.state === 'closed' || this.state === 'draining') return
    this.state = 'draining'
    if (this.h2 !== null) this.h2.close()
    if (this.h2 !== null && this.active === 0) this.closeNow()
    // Still dialling: its queued opens will be served, then it closes (see attach).
  }

  /** Ends the session at once (its streams are reset). */
  destroy (): void {
    if (this.cancelDial !== null) this.cancelDial()
    if (this.h2 !== null) this.h2.destroy()
    if (this.socket !== null) this.socket.destroy()
  }

  /** GOAWAY and a bounded wait for the peer to close (see closeSession). */
  private closeNow (): void {
    if (this.h2 !== null && this.socket !== null) closeSession(this.h2, this.socket, this.s.pingTimeoutMs)
  }

  private attach (h2: ClientHttp2Session, initialWindow: number, validUntil: number): void {
    this.h2 = h2
    this.buffers = new SessionBuffers(h2, this.s.bufferBudget, initialWindow, {
      ackTimeoutMs: this.s.pingTimeoutMs,
      onAckTimeout: () => {
        this.s.onRefused({ side: 'client', stage: 'session', reason: 'settings-timeout', detail: `no SETTINGS acknowledgement within ${this.s.pingTimeoutMs} ms`, remote: this.remote, servername: null, peerSpiffeId: this.expected, localSpiffeId: this.svid.spiffeId.uri })
        h2.destroy()
      },
      onRoom: () => { this.startWaiting() },
      onStallReset: (authority) => {
        this.s.onRefused({ side: 'client', stage: 'stream', reason: 'buffer-stall', detail: stallResetDetail, remote: this.remote, servername: null, peerSpiffeId: this.expected, localSpiffeId: this.svid.spiffeId.uri, authority })
      },
      side: 'client'
    })
    // When the first of the two certificates expires, no new stream (X.509 includes notAfter itself).
    this.expiry = setLongTimer(() => {
      this.expiry = null
      if (TRACE.on) TRACE('certificate expired: draining', { remote: this.remote })
      this.drain()
    }, validUntil - this.s.now() + 1)
    h2.on('error', (err) => { if (TRACE.on) TRACE('session error', { remote: this.remote, err: errorDetail(err) }) })
    h2.on('goaway', (code) => {
      if (TRACE.on) TRACE('goaway', { remote: this.remote, code: h2CodeName(code) })
      if (this.state !== 'closed') this.state = 'draining'
    })
    h2.once('close', () => {
      this.close(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'session-closed', this.everReady
        ? `tunnel session to ${this.remote} closed before the CONNECT was answered`
        // TLS 1.3: the server checks our certificate after our handshake is done.
        : `tunnel session to ${this.remote} closed before the peer's SETTINGS: it may have refused our certificate (its log says why)`))
    })
    h2.on('remoteSettings', (settings) => {
      const peerMax = settings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER
      this.capacity = Math.max(1, Math.min(this.s.maxStreamsPerSession, peerMax))
      if (this.everReady) return
      this.everReady = true
      const draining = this.state === 'draining'
      if (!draining) this.state = 'ready'
      const queued = this.queue
      this.queue = []
      const fits = queued.slice(0, Math.max(0, this.capacity - this.active))
      for (const a of fits) this.start(a)
      if (queued.length > fits.length) this.hooks.overflow(queued.slice(fits.length))
      if (draining) { h2.close(); if (this.active === 0) this.closeNow() }
    })
    watchSession(h2, {
      idleMs: this.s.idleTimeoutMs,
      pingTimeoutMs: this.s.pingTimeoutMs,
      // Opens still queued for the server's SETTINGS, or waiting for room, count: a session
      // whose first SETTINGS are slow to come is not idle.
      openStreams: () => this.active + this.queue.length + this.waiting.length,
      onIdle: () => { this.drain() },
      onDead: (why) => {
        if (TRACE.on) TRACE('session dead', { remote: this.remote, why })
        h2.destroy()
      }
    })
  }

  private start (a: OpenAttempt): void {
    if (a.settled) return
    const h2 = this.h2 as ClientHttp2Session
    const buffers = this.buffers as SessionBuffers
    const reservation = buffers.reserve()
    if (reservation === null && buffers.changing) {
      // A smaller window is on its way (grown windows give back room): the open waits for it, within its timeout.
      this.waiting.push(a)
      return
    }
    if (reservation === null) {
      const detail = noRoomDetail(buffers)
      this.s.onRefused({ side: 'client', stage: 'stream', reason: 'buffer-budget', detail, remote: this.remote, servername: null, peerSpiffeId: this.expected, localSpiffeId: this.svid.spiffeId.uri, authority: a.target.authority })
      a.fail(new TunnelError('FERRY_ERR_TUNNEL_BUSY', 'buffer-budget', `tunnel to ${a.target.authority} via ${this.remote}: ${detail}`))
      return
    }
    let stream: ClientHttp2Stream
    try {
      stream = h2.request(a.target.headers, { endStream: false })
    } catch (err) {
      this.buffers?.release(reservation)
      // The session began closing under us (GOAWAY just arrived): nothing was sent.
      this.hooks.retry(a, new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'session-closed', `tunnel session to ${this.remote}: ${errorDetail(err)}`))
      return
    }
    this.active++
    const lease = buffers.bind(stream, reservation)
    a.cancel = () => { if (!stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL) }
    stream.on('error', () => {})
    stream.once('response', (headers: IncomingHttpHeaders) => {
      a.cancel = null
      if (a.settled) { stream.close(NGHTTP2_CANCEL); return }
      const status = Number(headers[':status'])
      if (status === 200) {
        const tunnelStream = new TunnelStream(stream, {
          peerSpiffeId: this.expected,
          peerCertSerial: this.peerCertSerial,
          localSpiffeId: this.svid.spiffeId.uri,
          authority: a.target.authority,
          remoteAddress: this.node.address,
          remotePort: this.node.port
        }, lease)
        a.succeed(tunnelStream)
        return
      }
      stream.close(NGHTTP2_CANCEL)
      a.fail(new TunnelError('FERRY_ERR_TUNNEL_REFUSED', 'status', `tunnel to ${a.target.authority} via ${this.remote} refused with status ${status}`, { status }))
    })
    stream.once('close', () => {
      buffers.unbind(stream)
      this.active--
      if (this.state === 'draining' && this.active === 0) this.closeNow()
      if (!a.settled) {
        // Not answered yet, so nothing was sent on it: refused (REFUSED_STREAM, beyond a
        // GOAWAY) or lost with its session, it may be tried once more elsewhere. A reset
        // by the peer itself is its answer.
        const code = stream.rstCode ?? NGHTTP2_REFUSED_STREAM
        const lost = code === NGHTTP2_REFUSED_STREAM || h2.destroyed
        const err = new TunnelError('FERRY_ERR_TUNNEL_CONNECT', lost ? 'session-closed' : 'reset',
          `tunnel to ${a.target.authority} via ${this.remote}: stream closed before an answer (HTTP/2 ${h2CodeName(code)})`)
        if (lost) this.hooks.retry(a, err)
        else a.fail(err)
      }
    })
  }

  private startWaiting (): void {
    if (this.state === 'closed' || this.waiting.length === 0) return
    const waiting = this.waiting.filter((a) => !a.settled)
    this.waiting = []
    for (const a of waiting) this.start(a)
  }

  private close (err: TunnelError): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.expiry?.clear()
    this.expiry = null
    this.buffers?.close()
    const queued = [...this.queue, ...this.waiting]
    this.queue = []
    this.waiting = []
    for (const a of queued) a.fail(err)
    this.hooks.closed(this)
  }
}
