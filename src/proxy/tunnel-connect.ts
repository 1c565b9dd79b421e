import { isTunnelError, type TunnelStream } from '../tunnel'
import { trace } from '../telemetry/trace'
import { type Conn, errorCodeOf } from './conn'
import type { ConnectFailure } from './connect'
import { watchSource } from './connect'
import type { PodIdentities, TunnelOpener } from './mesh'
import type { UpstreamPath } from './path'

// Tunnel stage (outbound, path `tunnel`): a CONNECT stream to the endpoint through the
// peer node's tunnel port, from the pool (sessions are shared per source identity,
// destination identity and node). The source pod's current SVID is read at every open,
// so rotation is picked up. The pool bounds the open in time (connect + TLS + verify +
// the peer's answer). Failures are outcomes:
//
//   no certificate for the source yet      connect_error FERRY_ERR_TUNNEL_CONNECT no-certificate
//   TunnelError (refused, wrong identity…) connect_error (connect_timeout for a timeout),
//                                          error_code = its code (FERRY_ERR_TUNNEL_CONNECT, _PEER, _REFUSED, _BUSY),
//                                          error_reason = its reason ("status 503" for refusals)
//   the application left meanwhile         reset; a stream that arrives later is reset

const TRACE = trace('proxy')

export type TunnelTarget = Extract<UpstreamPath, { kind: 'tunnel' }>

export function openTunnel (
  conn: Conn,
  target: TunnelTarget,
  tunnels: TunnelOpener,
  identities: PodIdentities,
  onConnected: (stream: TunnelStream) => void,
  onFailed: (result: ConnectFailure, errorCode: string, reason: string) => void
): void {
  const sourceId = conn.sourcePrincipal
  const svid = sourceId === null ? null : identities.svidFor(sourceId)
  if (svid === null) {
    onFailed('connect_error', 'FERRY_ERR_TUNNEL_CONNECT', 'no-certificate')
    return
  }
  const endpoint = conn.endpoint!
  let settled = false
  const unwatch = watchSource(conn, undefined, () => {
    if (settled) return
    settled = true
    onFailed('reset', conn.errorCode ?? 'ECONNABORTED', 'source closed while the tunnel was opening')
  })
  tunnels.open({
    sourceSvid: () => identities.svidFor(sourceId as string) ?? svid,
    expectedPeer: target.expected,
    node: target.node,
    authority: endpoint,
    ...(conn.source.ip === '' ? {} : { sourceAddress: conn.source.ip })
  }).then((stream) => {
    unwatch()
    if (settled) { stream.resetAndDestroy(); return }
    settled = true
    if (TRACE.on) TRACE('tunnel open', { to: `${endpoint.address}:${endpoint.port}`, node: target.node.address, peer: stream.peerSpiffeId })
    onConnected(stream)
  }, (err: unknown) => {
    unwatch()
    if (settled) return
    settled = true
    if (isTunnelError(err)) {
      const reason = err.status !== null ? `status ${err.status}` : err.reason
      onFailed(err.reason === 'timeout' ? 'connect_timeout' : 'connect_error', err.code, reason)
    } else {
      onFailed('connect_error', errorCodeOf(err), (err as Error)?.message ?? String(err))
    }
  })
}
