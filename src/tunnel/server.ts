import { constants, createServer as createH2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import { createServer as createTlsServer, type SecureContext, type Server as TlsServer, type TLSSocket } from 'node:tls'
import { verifyTlsPeer } from '../identity/peer-verify'
import { svidSecureContext, TUNNEL_ALPN, TUNNEL_TLS_VERSION } from '../identity/tls-options'
import { trace } from '../telemetry/trace'
import { AcceptGate, type GateListenTarget } from './accept-gate'
import { formatAuthority } from './authority'
import { peerSerialOf } from './peer-serial'
import { TUNNEL_DEFAULTS } from './defaults'
import { serverSettings, type ServerSettings, type TunnelServerOptions } from './options'
import { errorDetail, type RefusalReason, type RefusalStage } from './refusal'
import { ServerSession } from './server-session'
import { noRoomDetail, SessionBuffers } from './session-buffers'
import { handleTunnelStream } from './server-stream'
import { isTunnelSni } from './sni'
import { trustOf } from './svid-trust'

// The tunnel's server end (port 15008): TLS 1.3 with ALPN h2, then HTTP/2 CONNECT streams.
//
//   0. TCP accept, before any TLS work (accept-gate.ts): the node-wide bound on
//      unverified connections and the source's handshake rate (admission.ts) or a reset;
//      the first byte must come within firstByteTimeoutMs
//   1. the TLS handshake must finish within handshakeTimeoutMs
//   2. SNI → selectSvid(servername) picks the certificate; no SNI, an unknown one, or
//      an identity whose certificate expired with no successor fails the handshake
//      (there is no default certificate to fall back on)
//   3. secureConnection: ALPN must be h2; verifyTlsPeer(socket, trust of the presented
//      SVID) — any workload of the trust domain, with a valid chain — or the socket is
//      destroyed before a byte is read or written
//   4. only then is the socket handed to an HTTP/2 server (which never listens itself),
//      so every stream belongs to a verified peer; the session (server-session.ts) drains
//      when a certificate it was made with expires or is rotated out, and its streams
//      reserve room in the buffer budget (buffer-budget.ts); streams go to server-stream.ts
//
// Every refusal goes to onRefused with its reason; other connections are unaffected.

const TRACE = trace('tunnel')
const SOCKET_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT'])
const NO_CERTIFICATE_TO_PRESENT = new Set(['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'ERR_SSL_NO_SHARED_CIPHER'])
const { NGHTTP2_REFUSED_STREAM } = constants

class SniRefusal extends Error {
  constructor (readonly reason: 'unknown-sni' | 'certificate-expired', message: string) { super(message) }
}

export interface TunnelServerStats {
  /** Verified sessions open now. */
  readonly sessions: number
  /** CONNECT streams open now (answered or not). */
  readonly streams: number
  /** Verified sessions since start. */
  readonly sessionsAccepted: number
  /** Connections refused before a session existed (admission, TLS or verification). */
  readonly connectionsRefused: number
  /** Connections accepted and not yet verified, node-wide (shared with every server of the node). */
  readonly pending: number
  /** Bytes reserved by tunnel streams, node-wide (both ends), and the budget. */
  readonly bufferReservedBytes: number
  readonly bufferBudgetBytes: number
  /** Bytes this server's streams hold now (unread from the tunnel, unsent to it). */
  readonly bufferHeldBytes: number
}

export class TunnelServer {
  private readonly s: ServerSettings
  private readonly gate: AcceptGate
  /** Never listens: the gate hands it the connections it admits. */
  private readonly tls: TlsServer
  private readonly h2: Http2Server
  private readonly sessions = new Map<ServerHttp2Session, ServerSession>()
  private handing: { session: (h2: ServerHttp2Session) => ServerSession } | null = null
  private accepted = 0
  private refused = 0

  constructor (opts: TunnelServerOptions) {
    this.s = serverSettings(opts)
    const s = this.s
    this.tls = createTlsServer({
      ALPNProtocols: [...TUNNEL_ALPN],
      minVersion: TUNNEL_TLS_VERSION,
      maxVersion: TUNNEL_TLS_VERSION,
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: s.handshakeTimeoutMs,
      SNICallback: (servername, cb) => { this.selectContext(servername, cb) }
    })
    this.gate = new AcceptGate(s.admission, s.firstByteTimeoutMs, s.now, {
      onReady: (raw) => { this.tls.emit('connection', raw) },
      onRefused: (raw, reason, detail) => { this.refuseRaw(raw, reason, detail) }
    })
    this.tls.on('secureConnection', (socket: TLSSocket) => { this.onSecureConnection(socket) })
    this.tls.on('tlsClientError', (err, socket) => { this.onTlsClientError(err, socket) })
    this.h2 = createH2Server({
      settings: {
        enablePush: false,
        maxConcurrentStreams: s.maxConcurrentStreams,
        initialWindowSize: s.streamWindowBytes,
        maxFrameSize: s.maxFrameBytes,
        maxHeaderListSize: s.maxHeaderListBytes
      }
    })
    this.h2.on('session', (session: ServerHttp2Session) => { this.onSession(session) })
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => { this.onStream(stream, headers, rawHeaders) })
  }

  /**
   * Starts listening on an address (port 0 picks one), or serves a listening socket made
   * elsewhere ({ fd, backlog }); resolves with the bound address.
   */
  async listen (target: GateListenTarget): Promise<{ address: string, port: number }> {
    const a = await this.gate.listen(target)
    return { address: a.address, port: a.port }
  }

  stats (): TunnelServerStats {
    let streams = 0
    let held = 0
    for (const st of this.sessions.values()) { streams += st.streams; held += st.buffers.held() }
    const budget = this.s.bufferBudget
    return {
      sessions: this.sessions.size,
      streams,
      sessionsAccepted: this.accepted,
      connectionsRefused: this.refused,
      pending: this.s.admission.pending(),
      bufferReservedBytes: budget.reservedBytes(),
      bufferBudgetBytes: budget.limits.nodeBytes,
      bufferHeldBytes: held
    }
  }

  /**
   * Stops accepting and sends GOAWAY on every session (clients open new streams
   * elsewhere); open streams go on, for as long as they last. close() bounds them.
   */
  stopAccepting (): void {
    void this.gate.close()
    for (const session of this.sessions.keys()) session.close()
  }

  /**
   * Stops accepting, sends GOAWAY on every session (clients open new streams elsewhere;
   * open streams go on), and destroys what is left after graceMs.
   */
  async close (graceMs: number = TUNNEL_DEFAULTS.closeGraceMs): Promise<void> {
    const stopped = this.gate.close()
    for (const session of this.sessions.keys()) session.close()
    const timer = setTimeout(() => {
      for (const [session, state] of this.sessions) { session.destroy(); state.socket.destroy() }
      for (const raw of this.gate.sockets) raw.destroy()
    }, graceMs)
    await stopped
    clearTimeout(timer)
  }

  private selectContext (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
    const svid = isTunnelSni(servername) ? this.s.selectSvid(servername) : null
    if (svid === null) cb(new SniRefusal('unknown-sni', `no identity is served for SNI "${printable(servername)}"`))
    // An expired SVID is never presented: the peer would refuse it anyway, and say less.
    else if (this.s.now() > svid.notAfter) cb(new SniRefusal('certificate-expired', `the certificate of ${svid.spiffeId.uri} expired at ${new Date(svid.notAfter).toISOString()} and has no successor yet`))
    else cb(null, svidSecureContext(svid))
  }

  private onTlsClientError (err: Error, socket: TLSSocket): void {
    const code = (err as { code?: unknown }).code
    let reason: RefusalReason = 'handshake'
    if (err instanceof SniRefusal) reason = err.reason
    else if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') reason = 'handshake-timeout'
    else if (code === 'ERR_SSL_NO_APPLICATION_PROTOCOL') reason = 'no-alpn'
    else if (typeof code === 'string' && NO_CERTIFICATE_TO_PRESENT.has(code) && !socket.servername) reason = 'no-sni'
    this.refuse(socket, 'handshake', reason, err instanceof SniRefusal ? err.message : errorDetail(err))
  }

  private onSecureConnection (socket: TLSSocket): void {
    socket.on('error', () => {})
    if (socket.alpnProtocol !== 'h2') return this.refuse(socket, 'verify', 'no-alpn', `ALPN ${String(socket.alpnProtocol)}, not h2`)
    const servername = socket.servername
    const svid = typeof servername === 'string' && servername !== '' ? this.s.selectSvid(servername) : null
    // The identity may have been removed between the SNI callback and now.
    if (svid === null) return this.refuse(socket, 'verify', 'unknown-sni', `no identity is served for SNI "${printable(String(servername))}"`)
    const peerCertSerial = peerSerialOf(socket)
    const now = this.s.now()
    const verdict = verifyTlsPeer(socket, trustOf(svid), { now })
    if (!verdict.ok) return this.refuse(socket, 'verify', verdict.reason, verdict.detail, svid.spiffeId.uri)
    const remoteAddress = socket.remoteAddress ?? ''
    const remotePort = socket.remotePort ?? 0
    // Verified: no longer an unauthenticated connection.
    this.gate.verified(remoteAddress, remotePort)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, TUNNEL_DEFAULTS.tcpKeepAliveMs)
    this.accepted++
    const peer = {
      peerSpiffeId: verdict.spiffeId.uri,
      peerCertSerial,
      localSpiffeId: svid.spiffeId.uri,
      remoteAddress,
      remotePort,
      remote: formatAuthority({ address: remoteAddress, port: remotePort }),
      servername: servername as string
    }
    const validUntil = Math.min(verdict.validUntil, svid.notAfter)
    // The session's first SETTINGS announce the floor: windows grow with demand (session-buffers.ts).
    const initialWindow = SessionBuffers.initialWindow(this.s.bufferBudget)
    this.h2.updateSettings({ initialWindowSize: initialWindow })
    this.handing = {
      session: (h2) => new ServerSession(h2, socket, peer, svid, validUntil, this.s, initialWindow)
    }
    if (TRACE.on) TRACE('session verified', { peer: peer.peerSpiffeId, local: peer.localSpiffeId, remote: peer.remote })
    try {
      this.h2.emit('connection', socket)
    } finally {
      this.handing = null
    }
  }

  private onSession (session: ServerHttp2Session): void {
    const handing = this.handing
    if (handing === null) { session.destroy(); return }
    const state = handing.session(session)
    this.sessions.set(session, state)
    session.on('error', (err) => {
      // A peer node that goes away is not a refusal; a protocol failure is.
      if (SOCKET_GONE.has((err as { code?: string }).code ?? '')) {
        if (TRACE.on) TRACE('session lost', { remote: state.remote, err: errorDetail(err) })
        return
      }
      this.s.onRefused({ side: 'server', stage: 'session', reason: 'session-error', detail: errorDetail(err), remote: state.remote, servername: state.servername, peerSpiffeId: state.peerSpiffeId, localSpiffeId: state.localSpiffeId })
    })
    session.once('close', () => { this.sessions.delete(session); state.closed() })
    session.setLocalWindowSize(this.s.connectionWindowBytes)
  }

  private onStream (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    const state = this.sessions.get(stream.session as ServerHttp2Session)
    if (state === undefined) { stream.on('error', () => {}); stream.close(); return }
    // A session whose certificates expired or rotated takes no new stream (REFUSED_STREAM: retried elsewhere).
    if (!state.openStream(stream)) return
    this.admit(stream, headers, rawHeaders, state)
  }

  /** Reserves the stream's buffers and hands it on; no room: it waits for a window change in flight, or is refused. */
  private admit (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], state: ServerSession): void {
    if (stream.destroyed || stream.closed) return
    const reservation = state.buffers.reserve()
    if (reservation === null && state.buffers.changing) {
      state.waitForRoom(() => { this.admit(stream, headers, rawHeaders, state) })
      return
    }
    if (reservation === null) {
      stream.on('error', () => {})
      stream.close(NGHTTP2_REFUSED_STREAM)
      this.s.onRefused({ side: 'server', stage: 'stream', reason: 'buffer-budget', detail: noRoomDetail(state.buffers), remote: state.remote, servername: state.servername, peerSpiffeId: state.peerSpiffeId, localSpiffeId: state.localSpiffeId })
      return
    }
    const lease = state.buffers.bind(stream, reservation)
    stream.once('close', () => { state.buffers.unbind(stream) })
    handleTunnelStream(stream, headers, rawHeaders, state, this.s, lease)
  }

  /** A connection the gate closed before TLS (the socket is already reset). */
  private refuseRaw (raw: Socket, reason: RefusalReason, detail: string): void {
    this.refused++
    const remote = raw.remoteAddress === undefined ? 'unknown' : formatAuthority({ address: raw.remoteAddress, port: raw.remotePort ?? 0 })
    if (TRACE.on) TRACE('refused', { stage: 'accept', reason, detail, remote })
    this.s.onRefused({ side: 'server', stage: 'accept', reason, detail, remote, servername: null })
  }

  private refuse (socket: TLSSocket, stage: RefusalStage, reason: RefusalReason, detail: string, localSpiffeId?: string): void {
    this.refused++
    const remote = socket.remoteAddress === undefined ? 'unknown' : formatAuthority({ address: socket.remoteAddress, port: socket.remotePort ?? 0 })
    const servername = typeof socket.servername === 'string' && socket.servername !== '' ? printable(socket.servername) : null
    socket.destroy()
    if (TRACE.on) TRACE('refused', { stage, reason, detail, remote })
    this.s.onRefused({ side: 'server', stage, reason, detail, remote, servername, ...(localSpiffeId === undefined ? {} : { localSpiffeId }) })
  }
}

/** Hostile input into a log line: no control characters, at most 100 characters. */
function printable (s: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '?')
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean
}
