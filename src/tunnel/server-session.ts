import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Svid } from '../identity/svid'
import { trace } from '../telemetry/trace'
import { setLongTimer, type LongTimer } from '../util/long-timer'
import type { ServerSettings } from './options'
import type { SessionPeer } from './server-stream'
import { SessionBuffers, stallResetDetail } from './session-buffers'
import { closeSession, watchSession } from './session-watch'

// One verified session on the server end: who the peer is, what this end presented, and
// when the session must stop taking streams.
//
//   certificates  the session is only as good as the two certificates it was made with:
//                 when either expires (the earliest notAfter of the peer's verified path
//                 or of the SVID this end presented), or when this end's SVID for that
//                 identity has been replaced by a rotation (selectSvid returns another),
//                 the session drains: GOAWAY, no new stream, open streams run to their
//                 end, then it closes (closeSession: a peer that never closes its side is
//                 cut off after the ping grace). A stream that arrives meanwhile is
//                 refused with REFUSED_STREAM, which the client retries on a new session
//                 — made with current certificates.
//   buffers       its streams' reservations in the buffer budget (buffer-budget.ts)
//   liveness      idle close and PING checks (session-watch.ts)

const TRACE = trace('tunnel')
const { NGHTTP2_REFUSED_STREAM } = constants

export type DrainCause = 'certificate-expired' | 'certificate-rotated' | 'idle' | 'settings-timeout'

export class ServerSession implements SessionPeer {
  streams = 0
  readonly buffers: SessionBuffers
  private draining: DrainCause | null = null
  private expiry: LongTimer | null = null
  /** Streams that found no room while a smaller window was on its way: tried again at onRoom. */
  private waiting: Array<() => void> = []

  constructor (
    readonly session: ServerHttp2Session,
    readonly socket: TLSSocket,
    readonly peer: SessionPeer,
    /** The certificate this end presented. */
    readonly svid: Svid,
    /** When the first of the two certificates expires (ms). */
    readonly validUntil: number,
    private readonly s: ServerSettings,
    /** The window the session's first SETTINGS announced. */
    initialWindow: number
  ) {
    this.buffers = new SessionBuffers(session, s.bufferBudget, initialWindow, {
      ackTimeoutMs: s.pingTimeoutMs,
      onAckTimeout: () => {
        this.refused('session', 'settings-timeout', `no SETTINGS acknowledgement within ${s.pingTimeoutMs} ms`)
        session.destroy()
      },
      onStallReset: (authority) => { this.refused('stream', 'buffer-stall', stallResetDetail, authority) },
      onRoom: () => { this.retryWaiting() },
      side: 'server'
    })
    session.once('localSettings', () => { this.buffers.firstAcknowledged() })
    // X.509 validity includes notAfter: the session may serve until just after it.
    this.expiry = setLongTimer(() => { this.expiry = null; this.drain('certificate-expired') }, validUntil - s.now() + 1)
    watchSession(session, {
      idleMs: s.idleTimeoutMs,
      pingTimeoutMs: s.pingTimeoutMs,
      openStreams: () => this.streams,
      onIdle: () => { this.drain('idle') },
      onDead: () => { session.destroy() }
    })
  }

  get peerSpiffeId (): string { return this.peer.peerSpiffeId }
  get peerCertSerial (): string { return this.peer.peerCertSerial }
  get localSpiffeId (): string { return this.peer.localSpiffeId }
  get remoteAddress (): string { return this.peer.remoteAddress }
  get remotePort (): number { return this.peer.remotePort }
  get remote (): string { return this.peer.remote }
  get servername (): string { return this.peer.servername }

  /**
   * A new stream: true if this session may carry it (it is then counted until it
   * closes); false if it was refused with REFUSED_STREAM because the session drains.
   */
  openStream (stream: ServerHttp2Stream): boolean {
    if (this.draining === null) {
      if (this.s.now() > this.validUntil) this.drain('certificate-expired')
      else if (this.s.selectSvid(this.peer.servername) !== this.svid) this.drain('certificate-rotated')
    }
    if (this.draining !== null) {
      stream.on('error', () => {})
      stream.close(NGHTTP2_REFUSED_STREAM)
      return false
    }
    this.streams++
    stream.once('close', () => {
      this.streams--
      if (this.draining !== null && this.streams === 0) closeSession(this.session, this.socket, this.s.pingTimeoutMs)
    })
    return true
  }

  /** No new streams; close once the open ones are done. */
  drain (cause: DrainCause): void {
    if (this.draining !== null || this.session.destroyed) return
    this.draining = cause
    if (TRACE.on) TRACE('session draining', { remote: this.peer.remote, peer: this.peer.peerSpiffeId, cause })
    if (this.streams === 0) closeSession(this.session, this.socket, this.s.pingTimeoutMs)
    else if (!this.session.closed) this.session.close()
  }

  /**
   * A stream that did not fit while a smaller window is on its way (buffers.changing): it
   * is tried again once the peer acknowledges it or a stream closes, as the client's opens
   * wait (client-session.ts) — rather than refused at once and retried by the client
   * before the acknowledgement has freed anything. The wait is bounded by the
   * acknowledgement's timeout, which cuts the session off.
   */
  waitForRoom (retry: () => void): void {
    this.waiting.push(retry)
  }

  private retryWaiting (): void {
    if (this.waiting.length === 0) return
    const waiting = this.waiting
    this.waiting = []
    for (const retry of waiting) retry()
  }

  /** Whether the session takes new streams. */
  get accepting (): boolean { return this.draining === null }

  private refused (stage: 'session' | 'stream', reason: 'settings-timeout' | 'buffer-stall', detail: string, authority?: string): void {
    const p = this.peer
    this.s.onRefused({ side: 'server', stage, reason, detail, remote: p.remote, servername: p.servername, peerSpiffeId: p.peerSpiffeId, localSpiffeId: p.localSpiffeId, ...(authority === undefined ? {} : { authority }) })
  }

  /** The session is gone: timers and reservations go with it. */
  closed (): void {
    this.expiry?.clear()
    this.expiry = null
    this.waiting = []
    this.buffers.close()
  }
}
