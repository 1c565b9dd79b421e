import type { TunnelRefusal } from '../tunnel'
import { type RateBuckets, type RateSpec, singleBucket } from '../util/rate-buckets'
import type { Logger } from './logger'
import type { ProxyMetrics } from './metrics'

// The tunnel library reports every refusal (its `onRefused` hook) on both ends: the
// server (a flood refused at accept, a peer's certificate from another CA, expired, no
// certificate, an unknown SNI, garbage instead of TLS, a CONNECT the agent refused …)
// and the pool (a peer node that presented the wrong identity …).
//
// Every refusal increments ferry_tunnel_refusals_total{side,stage,reason}. Lines are
// rate-limited, because a flood is made of refusals and must not become a flood of log
// lines (nor of memory in the log's buffer): at most `perSecond` warn lines
// `msg: "tunnel refused"` (with a burst), and the refusals beyond it are summed up once
// a second in one warn line `msg: "tunnel refusals suppressed"` with `suppressed` (how
// many) and `by_reason` ({reason: count}); each suppressed line also counts in
// ferry_log_lines_dropped_total{reason="rate_limited"}. The bucket may be shared
// (rate-buckets.ts) so that the limit holds for the node across worker threads.
//
// Line fields: side, stage, reason, detail, remote ("ip:port" of the other node),
// servername (SNI), peer_principal (verified or expected), local_principal, status and
// authority (stream refusals).

export const REFUSAL_LOG_LIMITS: RateSpec & { readonly summaryMs: number } = Object.freeze({
  perSecond: 10,
  burst: 20,
  /** Suppressed refusals are summed up this often (at most one summary line per period). */
  summaryMs: 1000
})

export type TunnelRefusalLog = (r: TunnelRefusal) => void

export interface RefusalLogOptions {
  /** The line budget (default: a bucket of REFUSAL_LOG_LIMITS of this thread's own). */
  readonly bucket?: RateBuckets
  readonly now?: () => number
  readonly summaryMs?: number
}

export function createTunnelRefusalLog (log: Logger, metrics: ProxyMetrics, opts: RefusalLogOptions = {}): TunnelRefusalLog {
  const bucket = opts.bucket ?? singleBucket(REFUSAL_LOG_LIMITS)
  const now = opts.now ?? Date.now
  const summaryMs = opts.summaryMs ?? REFUSAL_LOG_LIMITS.summaryMs
  let suppressed = 0
  let byReason: Record<string, number> = {}
  let timer: NodeJS.Timeout | null = null

  const summarize = (): void => {
    timer = null
    if (suppressed === 0) return
    log.warn({ suppressed, by_reason: byReason }, 'tunnel refusals suppressed')
    suppressed = 0
    byReason = {}
  }

  return (r) => {
    metrics.tunnelRefused(r)
    if (!log.isLevelEnabled('warn')) return
    if (!bucket.take(0, now())) {
      suppressed++
      byReason[r.reason] = (byReason[r.reason] ?? 0) + 1
      metrics.rateLimitedLineDropped()
      if (timer === null) {
        timer = setTimeout(summarize, summaryMs)
        timer.unref()
      }
      return
    }
    const line: Record<string, unknown> = { side: r.side, stage: r.stage, reason: r.reason, detail: r.detail, remote: r.remote }
    if (r.servername !== null) line.servername = r.servername
    if (r.peerSpiffeId !== undefined) line.peer_principal = r.peerSpiffeId
    if (r.localSpiffeId !== undefined) line.local_principal = r.localSpiffeId
    if (r.status !== undefined) line.status = r.status
    if (r.authority !== undefined) line.authority = r.authority
    log.warn(line, 'tunnel refused')
  }
}
