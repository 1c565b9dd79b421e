import type { TunnelRefusal } from '../tunnel'
import type { Logger } from './logger'
import type { ProxyMetrics } from './metrics'

// The tunnel library reports every refusal (its `onRefused` hook) on both ends: the
// server (a peer's certificate from another CA, expired, no certificate, an unknown SNI,
// garbage instead of TLS, a CONNECT the agent refused …) and the pool (a peer node that
// presented the wrong identity …). Each becomes one warn line, `msg: "tunnel refused"`,
// and one increment of ferry_tunnel_refusals_total{side,stage,reason}.
//
// Line fields: side, stage, reason, detail, remote ("ip:port" of the other node),
// servername (SNI), peer_principal (verified or expected), local_principal, status and
// authority (stream refusals).

export type TunnelRefusalLog = (r: TunnelRefusal) => void

export function createTunnelRefusalLog (log: Logger, metrics: ProxyMetrics): TunnelRefusalLog {
  return (r) => {
    metrics.tunnelRefused(r)
    if (!log.isLevelEnabled('warn')) return
    const line: Record<string, unknown> = { side: r.side, stage: r.stage, reason: r.reason, detail: r.detail, remote: r.remote }
    if (r.servername !== null) line.servername = r.servername
    if (r.peerSpiffeId !== undefined) line.peer_principal = r.peerSpiffeId
    if (r.localSpiffeId !== undefined) line.local_principal = r.localSpiffeId
    if (r.status !== undefined) line.status = r.status
    if (r.authority !== undefined) line.authority = r.authority
    log.warn(line, 'tunnel refused')
  }
}
