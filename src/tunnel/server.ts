import { createServer as createH2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import { createServer as createTlsServer, type SecureContext, type Server as TlsServer, type TLSSocket } from 'node:tls'
import { verifyTlsPeer } from '../identity/peer-verify'
import { svidSecureContext, TUNNEL_ALPN, TUNNEL_TLS_VERSION } from '../identity/tls-options'
import { trace } from '../telemetry/trace'
import { formatAuthority } from './authority'
import { peerSerialOf } from './peer-serial'
import { TUNNEL_DEFAULTS } from './defaults'
import { serverSettings, type ServerSettings, type TunnelServerOptions } from './options'
import { errorDetail, type RefusalReason, type RefusalStage } from './refusal'
import { handleTunnelStream, type SessionPeer } from './server-stream'
import { closeSession, watchSession } from './session-watch'
import { isTunnelSni } from './sni'
import { trustOf } from './svid-trust'

// The tunnel's server end (port 15008): TLS 1.3 with ALPN h2, then HTTP/2 CONNECT streams.
//
//   1. TCP accept; the TLS handshake must finish within handshakeTimeoutMs
//   2. SNI → selectSvid(servername) picks the certificate; no SNI or an unknown one fails
//      the handshake (there is no default certificate to fall back on)
//   3. secureConnection: ALPN must be h2; verifyTlsPeer(socket, trust of the presented
//      SVID) — any workload of the trust domain, with a valid chain — or the socket is
//      destroyed before a byte is read or written
//   4. only then is the socket handed to an HTTP/2 server (which never listens itself),
//      so every stream belongs to a verified peer; streams go to server-stream.ts
//
// Every refusal goes to onRefused with its reason; other connections are unaffected.

const TRACE = trace('tunnel')
const SOCKET_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT'])
const NO_CERTIFICATE_TO_PRESENT = new Set(['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'ERR_SSL_NO_SHARED_CIPHER'])

class UnknownSniError extends Error {}

interface SessionState extends SessionPeer {
  readonly socket: TLSSocket
  streams: number
}

export interface TunnelServerStats {
  /** Verified sessions open now. */
  readonly sessions: number
  /** CONNECT streams open now (answered or not). */
  readonly streams: number
  /** Verified sessions since start. */
  readonly sessionsAccepted: number
  /** Connections refused before a session existed (any TLS or verification reason). */
  readonly connectionsRefused: number
}

export class TunnelServer {
  private readonly s: ServerSettings
  private readonly tls: TlsServer
  private readonly h2: Http2Server
  private readonly sessions = new Map<ServerHttp2Session, SessionState>()
  /** Every accepted TCP socket, verified or still in its handshake (for close()). */
  private readonly sockets = new Set<Socket>()
  private handing: SessionState | null = null
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
    this.tls.on('connection', (raw: Socket) => {
      this.sockets.add(raw)
      raw.once('close', () => { this.sockets.delete(raw) })
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

  /** Starts listening; resolves with the bound address (port 0 picks one). */
  async listen (target: { readonly host: string, readonly port: number }): Promise<{ address: string, port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.tls.once('error', reject)
      this.tls.listen({ host: target.host, port: target.port }, () => {
        this.tls.off('error', reject)
        resolve()
      })
    })
    // After listening, errors are accept failures (EMFILE, ...): the server keeps going.
    this.tls.on('error', () => {})
    const a = this.tls.address() as AddressInfo
    return { address: a.address, port: a.port }
  }

  stats (): TunnelServerStats {
    let streams = 0
    for (const st of this.sessions.values()) streams += st.streams
    return { sessions: this.sessions.size, streams, sessionsAccepted: this.accepted, connectionsRefused: this.refused }
  }

  /**
   * Stops accepting, sends GOAWAY on every session (clients open new streams elsewhere;
   * open streams go on), and destroys what is left after graceMs.
   */
  async close (graceMs: number = TUNNEL_DEFAULTS.closeGraceMs): Promise<void> {
    const stopped = new Promise<void>((resolve) => { this.tls.close(() => { resolve() }) })
    for (const session of this.sessions.keys()) session.close()
    const timer = setTimeout(() => {
      for (const [session, state] of this.sessions) { session.destroy(); state.socket.destroy() }
      for (const raw of this.sockets) raw.destroy()
    }, graceMs)
    await stopped
    clearTimeout(timer)
  }

  private selectContext (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
    const svid = isTunnelSni(servername) ? this.s.selectSvid(servername) : null
    if (svid === null) cb(new UnknownSniError(`no identity is served for SNI "${printable(servername)}"`))
    else cb(null, svidSecureContext(svid))
  }

  private onTlsClientError (err: Error, socket: TLSSocket): void {
    const code = (err as { code?: unknown }).code
    let reason: RefusalReason = 'handshake'
    if (err instanceof UnknownSniError) reason = 'unknown-sni'
    else if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') reason = 'handshake-timeout'
    else if (code === 'ERR_SSL_NO_APPLICATION_PROTOCOL') reason = 'no-alpn'
    else if (typeof code === 'string' && NO_CERTIFICATE_TO_PRESENT.has(code) && !socket.servername) reason = 'no-sni'
    this.refuse(socket, 'handshake', reason, err instanceof UnknownSniError ? err.message : errorDetail(err))
  }

  private onSecureConnection (socket: TLSSocket): void {
    socket.on('error', () => {})
    if (socket.alpnProtocol !== 'h2') return this.refuse(socket, 'verify', 'no-alpn', `ALPN ${String(socket.alpnProtocol)}, not h2`)
    const servername = socket.servername
    const svid = typeof servername === 'string' && servername !== '' ? this.s.selectSvid(servername) : null
    // The identity may have been removed between the SNI callback and now.
    if (svid === null) return this.refuse(socket, 'verify', 'unknown-sni', `no identity is served for SNI "${printable(String(servername))}"`)
    const peerCertSerial = peerSerialOf(socket)
    const verdict = verifyTlsPeer(socket, trustOf(svid), { now: this.s.now() })
    if (!verdict.ok) return this.refuse(socket, 'verify', verdict.reason, verdict.detail, svid.spiffeId.uri)
    const remoteAddress = socket.remoteAddress ?? ''
    const remotePort = socket.remotePort ?? 0
    socket.setNoDelay(true)
    socket.setKeepAlive(true, TUNNEL_DEFAULTS.tcpKeepAliveMs)
    this.accepted++
    this.handing = {
      peerSpiffeId: verdict.spiffeId.uri,
      peerCertSerial,
      localSpiffeId: svid.spiffeId.uri,
      remoteAddress,
      remotePort,
      remote: formatAuthority({ address: remoteAddress, port: remotePort }),
      servername: servername as string,
      socket,
      streams: 0
    }
    if (TRACE.on) TRACE('session verified', { peer: verdict.spiffeId.uri, local: svid.spiffeId.uri, remote: this.handing.remote })
    try {
      this.h2.emit('connection', socket)
    } finally {
      this.handing = null
    }
  }

  private onSession (session: ServerHttp2Session): void {
    const state = this.handing
    if (state === null) { session.destroy(); return }
    this.sessions.set(session, state)
    session.on('error', (err) => {
      // A peer node that goes away is not a refusal; a protocol failure is.
      if (SOCKET_GONE.has((err as { code?: string }).code ?? '')) {
        if (TRACE.on) TRACE('session lost', { remote: state.remote, err: errorDetail(err) })
        return
      }
      this.s.onRefused({ side: 'server', stage: 'session', reason: 'session-error', detail: errorDetail(err), remote: state.remote, servername: state.servername, peerSpiffeId: state.peerSpiffeId, localSpiffeId: state.localSpiffeId })
    })
    session.once('close', () => { this.sessions.delete(session) })
    session.setLocalWindowSize(this.s.connectionWindowBytes)
    watchSession(session, {
      idleMs: this.s.idleTimeoutMs,
      pingTimeoutMs: this.s.pingTimeoutMs,
      openStreams: () => state.streams,
      onIdle: () => { closeSession(session, state.socket, this.s.pingTimeoutMs) },
      onDead: () => { session.destroy() }
    })
  }

  private onStream (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    const state = this.sessions.get(stream.session as ServerHttp2Session)
    if (state === undefined) { stream.on('error', () => {}); stream.close(); return }
    state.streams++
    stream.once('close', () => { state.streams-- })
    handleTunnelStream(stream, headers, rawHeaders, state, this.s)
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
