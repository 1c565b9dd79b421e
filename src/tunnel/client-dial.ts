import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { type PeerRejectReason, verifyTlsPeer } from '../identity/peer-verify'
import type { Svid } from '../identity/svid'
import { tunnelClientOptions } from '../identity/tls-options'
import { TUNNEL_DEFAULTS } from './defaults'
import type { PoolSettings } from './options'
import { errorDetail, TunnelError } from './refusal'
import { peerSerialOf } from './peer-serial'
import { SessionBuffers } from './session-buffers'
import { sniOf } from './sni'
import { trustOf } from './svid-trust'

// Dialling a peer node's tunnel port: TCP, TLS 1.3 presenting `svid` with the SNI of the
// expected identity, then verifyTlsPeer(expected) against the SVID's bundle — and only
// when that passes is an HTTP/2 session started on the socket. A server that is not who
// discovery says (wrong identity, another CA, expired…) never sees an HTTP/2 byte.
// Handshake and verification failures are reported to onRefused.

export interface Dialled {
  readonly session: ClientHttp2Session
  readonly socket: TLSSocket
  readonly peerSpiffeId: string
  readonly peerCertSerial: string
  /** The earliest notAfter on the peer's verified path (ms). */
  readonly peerValidUntil: number
  /** The stream window the session's first SETTINGS announced. */
  readonly initialWindow: number
}

export async function dialTunnel (node: { readonly address: string, readonly port: number }, remote: string, svid: Svid, expected: string, s: PoolSettings,
  registerCancel: (cancel: () => void) => void): Promise<Dialled> {
  const servername = sniOf(expected)
  const localSpiffeId = svid.spiffeId.uri
  return await new Promise<Dialled>((resolve, reject) => {
    let connected = false
    let settled = false
    const socket: TLSSocket = tlsConnect({ ...tunnelClientOptions(svid), host: node.address, port: node.port, servername })
    // Whatever happens after settling is the session's business (or nobody's).
    socket.on('error', () => {})
    const timer = setTimeout(() => { fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'timeout', `tunnel to ${remote} (${expected}): no TLS session within ${s.openTimeoutMs} ms`)) }, s.openTimeoutMs)
    registerCancel(() => { fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'closed', `tunnel to ${remote}: the pool is closing`)) })

    function fail (err: TunnelError): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    function refuse (stage: 'handshake' | 'verify', reason: 'handshake' | 'no-alpn' | PeerRejectReason, detail: string, code: 'FERRY_ERR_TUNNEL_PEER' | 'FERRY_ERR_TUNNEL_CONNECT'): void {
      if (settled) return
      s.onRefused({ side: 'client', stage, reason, detail, remote, servername, peerSpiffeId: expected, localSpiffeId })
      fail(new TunnelError(code, reason, `tunnel to ${remote} refused (${reason}): ${detail}`))
    }

    socket.once('connect', () => { connected = true })
    socket.once('error', (err) => {
      if (connected) refuse('handshake', 'handshake', errorDetail(err), 'FERRY_ERR_TUNNEL_CONNECT')
      else fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'connect', `tunnel to ${remote}: ${errorDetail(err)}`, { cause: err }))
    })
    socket.once('close', () => { fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', connected ? 'handshake' : 'connect', `tunnel to ${remote}: closed before the TLS handshake finished`)) })
    socket.once('secureConnect', () => {
      if (settled) return
      if (socket.alpnProtocol !== 'h2') return refuse('verify', 'no-alpn', `ALPN ${String(socket.alpnProtocol)}, not h2`, 'FERRY_ERR_TUNNEL_CONNECT')
      // Before verifyTlsPeer: see peer-serial.ts.
      const peerCertSerial = peerSerialOf(socket)
      const verdict = verifyTlsPeer(socket, trustOf(svid), { expected, now: s.now() })
      if (!verdict.ok) return refuse('verify', verdict.reason, verdict.detail, 'FERRY_ERR_TUNNEL_PEER')
      settled = true
      clearTimeout(timer)
      socket.setNoDelay(true)
      socket.setKeepAlive(true, TUNNEL_DEFAULTS.tcpKeepAliveMs)
      // The floor: the session's window grows with its streams' demand (session-buffers.ts).
      const initialWindow = SessionBuffers.initialWindow(s.bufferBudget)
      const session = http2Connect(`https://${remote}`, {
        createConnection: () => socket,
        settings: { enablePush: false, initialWindowSize: initialWindow, maxFrameSize: s.maxFrameBytes }
      })
      // The connection window, now: the socket is already connected, so the session is
      // set up, and its 'connect' comes on the next tick, before whoever awaits this
      // promise can listen for it. Waiting for 'connect' left the window at the protocol's
      // 64 KiB: every download stalled on a WINDOW_UPDATE per 32 KiB (benchmarks/notes-bulk.md).
      session.setLocalWindowSize(s.connectionWindowBytes)
      resolve({ session, socket, peerSpiffeId: verdict.spiffeId.uri, peerCertSerial, peerValidUntil: verdict.validUntil, initialWindow })
    })
  })
}
