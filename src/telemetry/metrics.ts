import { Counter, Gauge, Registry } from 'prom-client'
import type { ConnectionRecord } from './connection-record'
import { CONNECTION_LABELS, type ConnectionLabel, connectionReporter, connectionResponseFlags, IstioLabeler, labelObject } from './istio-labels'
import { type LiveWorkloads, type RetirableSeries, SeriesRetirement } from './series-retirement'

// Istio's TCP metrics (istio_tcp_*, with Istio's labels: src/telemetry/istio-labels.ts)
// and Ferry's own (ferry_*), on a registry of our own (never prom-client's global one, so
// two agents in one test process do not share counters). A connection is counted once,
// under Istio's name: Ferry has no second counter of the same thing.
//
// Byte counters follow Istio/Envoy: `sent` is what the proxy sent to the source
// (response direction), `received` is what it received from the source (request
// direction). Bytes of live connections are added at scrape time (a `collect` hook
// walks the live set), so long connections show up before they close and the data
// path never touches a counter per chunk.
//
// Nor does it touch prom-client per connection: a prom-client `inc(labels)` hashes and
// validates the whole label object (23 labels here) every call, ~20 µs per connection
// for the four counters and the gauge (benchmarks/notes-newconn.md). The data path
// counts into a Series — one per distinct label set, found by one Map lookup — and the
// counters' `collect` hooks hand the counts to prom-client when scraped, so what a scrape
// shows is exactly what per-connection increments would have shown.
//
// response_flags: opened connections and bytes are counted under "-"; a closed
// connection under the Envoy flag of its result (connectionResponseFlags: UF, UH, NR,
// UC, RBAC, or "-" for ok). The access log keeps Ferry's finer `result`.

const NO_FLAGS = '-'
type ConnLabels = Record<ConnectionLabel, string>

export const METRIC_NAMES = Object.freeze({
  opened: 'istio_tcp_connections_opened_total',
  closed: 'istio_tcp_connections_closed_total',
  sent: 'istio_tcp_sent_bytes_total',
  received: 'istio_tcp_received_bytes_total',
  active: 'ferry_tcp_connections_active',
  enrolledPods: 'ferry_enrolled_pods',
  podsNotEnrolled: 'ferry_pods_not_enrolled',
  adminDebugRequests: 'ferry_admin_debug_requests_total',
  tunnelRefusals: 'ferry_tunnel_refusals_total',
  authzDenied: 'ferry_authz_denied_total',
  shortcuts: 'ferry_sockmap_shortcuts_total',
  logLinesDropped: 'ferry_log_lines_dropped_total'
})


/** A sockmap shortcut a connection asked for: a hop joined (or not), a same-node connection spliced (or not). */
export type ShortcutKind = 'hop' | 'splice'

/** Labels of one tunnel refusal: which end refused, at which stage, and why (the tunnel library's reason). */
export interface TunnelRefusalLabels {
  readonly side: 'server' | 'client'
  readonly stage: string
  readonly reason: string
}

/** The counts of one label set not yet handed to prom-client (each counter's collect hook takes its own). */
class Series implements RetirableSeries {
  gone?: RetirableSeries['gone']
  opened = 0
  /** Closed connections by response flag, not yet reported. */
  readonly closed = new Map<string, number>()
  /** response flag → the labels object with that flag (built once). */
  readonly closedLabels = new Map<string, ConnLabels>()
  sent = 0
  received = 0
  constructor (readonly labels: ConnLabels) {}
}

/** Per-connection bookkeeping kept in ConnectionRecord.telemetry. */
class Tally {
  reportedSent = 0
  reportedReceived = 0
  constructor (readonly series: Series) {}
}

export class ProxyMetrics {
  readonly registry: Registry
  private readonly openedTotal: Counter<ConnectionLabel>
  private readonly closedTotal: Counter<ConnectionLabel>
  private readonly sentTotal: Counter<ConnectionLabel>
  private readonly receivedTotal: Counter<ConnectionLabel>
  private readonly active: Gauge<'direction'>
  private readonly enrolled: Gauge
  private readonly notEnrolled: Gauge<'reason'>
  private readonly debugRequests: Counter<'result'>
  private readonly refusals: Counter<keyof TunnelRefusalLabels>
  private readonly denied: Counter<'policy' | 'basis'>
  private readonly shortcutsTotal: Counter<'kind' | 'result'>
  private readonly logDrops: Counter<'reason'>
  /** Refusals by "side\0stage\0reason" not yet handed to prom-client. */
  private readonly refusalCounts = new Map<string, number>()
  /** Refusals counted outside this process (the kernel's SYN drops), read at scrape. */
  private readonly watchedRefusals: Array<{ labels: TunnelRefusalLabels, count: () => number | null, reported: number }> = []
  private rateLimitedLines = 0
  private outputDrops: () => number = () => 0
  private outputDropsReported = 0
  /** Shortcut outcomes since the last scrape: hop ok, hop refused, splice ok, splice refused. */
  private readonly shortcutCounts = [0, 0, 0, 0]
  private readonly live = new Set<ConnectionRecord>()
  /** Every label set seen, by seriesKey(). */
  private readonly series = new Map<string, Series>()
  private readonly retirement = new SeriesRetirement(this.series)
  /** Series with opened/closed counts not yet handed to prom-client. */
  private readonly pendingOpened = new Set<Series>()
  private readonly pendingClosed = new Set<Series>()
  /** Series with bytes (or a close) not yet handed to prom-client, per byte counter. */
  private readonly pendingSent = new Set<Series>()
  private readonly pendingReceived = new Set<Series>()
  private activeOutbound = 0
  private activeInbound = 0

  /**
   * `labeler`: where Istio's label values come from (pod labels, cluster name); the default
   * one knows no pod labels (app/version "unknown", canonical service = workload).
   */
  constructor (registry: Registry = new Registry(), private readonly labeler: IstioLabeler = new IstioLabeler()) {
    this.registry = registry
    const registers = [registry]
    const labelNames = [...CONNECTION_LABELS]
    const self = this
    // The first of the scrape's collect hooks: series retired since the scrape before go first.
    this.openedTotal = new Counter({ name: METRIC_NAMES.opened, help: 'TCP connections opened through the proxy (Istio\'s standard metric)', labelNames, registers, collect () { self.drop(self.retirement.scrape()); self.flushOpened() } })
    this.closedTotal = new Counter({ name: METRIC_NAMES.closed, help: 'TCP connections closed (Istio\'s standard metric; response_flags: the Envoy flag of how it ended)', labelNames, registers, collect () { self.flushClosed() } })
    this.sentTotal = new Counter({ name: METRIC_NAMES.sent, help: 'Bytes sent by the proxy to the source (response direction)', labelNames, registers, collect () { self.flushBytes('sent') } })
    this.receivedTotal = new Counter({ name: METRIC_NAMES.received, help: 'Bytes received by the proxy from the source (request direction)', labelNames, registers, collect () { self.flushBytes('received') } })
    this.active = new Gauge({ name: METRIC_NAMES.active, help: 'TCP connections currently open through the proxy', labelNames: ['direction'], registers, collect () { self.flushActive() } })
    this.enrolled = new Gauge({ name: METRIC_NAMES.enrolledPods, help: 'Pods on this node enrolled in capture', registers })
    this.debugRequests = new Counter({ name: METRIC_NAMES.adminDebugRequests, help: 'Requests to the admin port\'s /debug/* endpoints, by result (ok, or the HTTP status of the refusal: 401, 403, 429, 503)', labelNames: ['result'], registers })
    this.notEnrolled = new Gauge({ name: METRIC_NAMES.podsNotEnrolled, help: 'Meshed pods of this node not enrolled now, by reason (not_located, invalid_annotation, port_in_use, error, pending); retried', labelNames: ['reason'], registers })
    this.refusals = new Counter({ name: METRIC_NAMES.tunnelRefusals, help: 'Tunnel connections and streams refused, by side, stage and reason (rate-limit, first-byte-timeout, other-ca, expired, wrong-identity, no-certificate, ...)', labelNames: ['side', 'stage', 'reason'], registers, collect () { self.flushRefusals() } })
    this.denied = new Counter({ name: METRIC_NAMES.authzDenied, help: 'Inbound connections denied by authorization (or closed when a new policy denied them), by deciding policy and basis', labelNames: ['policy', 'basis'], registers })
    this.shortcutsTotal = new Counter({ name: METRIC_NAMES.shortcuts, help: 'sockmap shortcuts asked for, by kind (hop: a pod <-> proxy hop joined; splice: a same-node connection spliced app to app) and result (ok, refused: it goes by TCP)', labelNames: ['kind', 'result'], registers, collect () { self.flushShortcuts() } })
    this.logDrops = new Counter({ name: METRIC_NAMES.logLinesDropped, help: 'Log lines not written, by reason (rate_limited: tunnel refusal lines beyond the line budget, summed up instead; output_full: the log output did not keep up)', labelNames: ['reason'], registers, collect () { self.flushLogDrops() } })
    this.flushActive()
  }

  /** A rate-limited log line was dropped (counted here, handed to prom-client at scrape). */
  rateLimitedLineDropped (): void {
    this.rateLimitedLines++
  }

  /** Where to read how many lines the log's output dropped (telemetry/logger.ts droppedLogLines). */
  watchLogDrops (count: () => number): void {
    this.outputDrops = count
    this.outputDropsReported = count()
  }

  private flushLogDrops (): void {
    this.logDrops.inc({ reason: 'rate_limited' }, this.rateLimitedLines)
    this.rateLimitedLines = 0
    const now = this.outputDrops()
    this.logDrops.inc({ reason: 'output_full' }, Math.max(0, now - this.outputDropsReported))
    this.outputDropsReported = now
  }

  /** One shortcut asked for; counted here, handed to prom-client at scrape. */
  shortcut (kind: ShortcutKind, ok: boolean): void {
    this.shortcutCounts[(kind === 'hop' ? 0 : 2) + (ok ? 0 : 1)]!++
  }

  private flushShortcuts (): void {
    const c = this.shortcutCounts
    const labels = [['hop', 'ok'], ['hop', 'refused'], ['splice', 'ok'], ['splice', 'refused']] as const
    labels.forEach(([kind, result], i) => {
      this.shortcutsTotal.inc({ kind, result }, c[i]!)
      c[i] = 0
    })
  }

  /** A connection denied (or closed) by authorization: the deciding policy ("-" for the no-ALLOW-matched default). */
  authzDenied (policy: string, basis: string): void {
    this.denied.inc({ policy, basis })
  }

  /** One refusal; counted here (a flood is made of refusals), handed to prom-client at scrape. */
  tunnelRefused (labels: TunnelRefusalLabels): void {
    const key = labels.side + '\0' + labels.stage + '\0' + labels.reason
    const n = this.refusalCounts.get(key)
    if (n === undefined) this.refusalCounts.set(key, 1)
    else this.refusalCounts.set(key, n + 1)
  }

  /**
   * Refusals counted elsewhere — the SYNs the kernel dropped on the tunnel port — under
   * `labels`: read at each scrape, and what they grew by is added (null: nothing to read now).
   */
  watchRefusals (labels: TunnelRefusalLabels, count: () => number | null): void {
    this.watchedRefusals.push({ labels, count, reported: count() ?? 0 })
  }

  private flushRefusals (): void {
    for (const w of this.watchedRefusals) {
      const now = w.count()
      if (now === null || now <= w.reported) continue
      this.refusals.inc({ ...w.labels }, now - w.reported)
      w.reported = now
    }
    for (const [key, n] of this.refusalCounts) {
      if (n === 0) continue
      const [side, stage, reason] = key.split('\0')
      this.refusals.inc({ side, stage, reason }, n)
      this.refusalCounts.set(key, 0)
    }
  }

  /** A connection was accepted (its destination is not known yet). */
  connectionAccepted (r: ConnectionRecord): void {
    if (r.direction === 'outbound') this.activeOutbound++
    else this.activeInbound++
  }

  /** Route decided (or the connection failed before it could be): labels are final. */
  connectionOpened (r: ConnectionRecord): void {
    if (r.telemetry instanceof Tally) return
    const series = this.seriesOf(r)
    r.telemetry = new Tally(series)
    series.opened++
    this.pendingOpened.add(series)
    this.live.add(r)
  }

  connectionClosed (r: ConnectionRecord): void {
    this.connectionOpened(r)
    const tally = r.telemetry as Tally
    const series = tally.series
    this.live.delete(r)
    this.addBytes(r, tally)
    const flags = connectionResponseFlags(r.result)
    series.closed.set(flags, (series.closed.get(flags) ?? 0) + 1)
    this.pendingClosed.add(series)
    if (r.direction === 'outbound') this.activeOutbound--
    else this.activeInbound--
  }

  setEnrolledPods (n: number): void { this.enrolled.set(n) }

  adminDebugRequest (result: string): void { this.debugRequests.inc({ result }) }

  setPodsNotEnrolled (byReason: Readonly<Record<string, number>>): void {
    for (const [reason, n] of Object.entries(byReason)) this.notEnrolled.set({ reason }, n)
  }

  async text (): Promise<string> { return await this.registry.metrics() }

  /**
   * A new cluster snapshot: the TCP series of workloads no longer in it, with no open
   * connection, are exported once more and then dropped (src/telemetry/series-retirement.ts).
   */
  retireGoneWorkloads (live: LiveWorkloads): void {
    const busy = new Set<Series>()
    for (const r of this.live) busy.add((r.telemetry as Tally).series)
    this.drop(this.retirement.mark(live, (s) => busy.has(s)))
  }

  /** Distinct TCP label sets held now. */
  get seriesCount (): number { return this.series.size }

  private drop (series: readonly Series[]): void {
    for (const s of series) {
      this.pendingOpened.delete(s)
      this.pendingClosed.delete(s)
      this.pendingSent.delete(s)
      this.pendingReceived.delete(s)
      this.openedTotal.remove(s.labels)
      this.sentTotal.remove(s.labels)
      this.receivedTotal.remove(s.labels)
      for (const labels of s.closedLabels.values()) this.closedTotal.remove(labels)
    }
  }

  private seriesOf (r: ConnectionRecord): Series {
    const values = this.labeler.connectionValues(r, connectionReporter(r), 'tcp', NO_FLAGS)
    // One string per distinct label set (no value holds a NUL: istio-labels.ts).
    const key = values.join('\0')
    let series = this.series.get(key)
    if (series === undefined) {
      series = new Series(labelObject(CONNECTION_LABELS, values))
      this.series.set(key, series)
    }
    return series
  }

  private flushOpened (): void {
    for (const s of this.pendingOpened) {
      this.openedTotal.inc(s.labels, s.opened)
      s.opened = 0
    }
    this.pendingOpened.clear()
  }

  private flushClosed (): void {
    for (const s of this.pendingClosed) {
      for (const [flags, n] of s.closed) {
        let labels = s.closedLabels.get(flags)
        if (labels === undefined) {
          labels = { ...s.labels, response_flags: flags }
          s.closedLabels.set(flags, labels)
        }
        this.closedTotal.inc(labels, n)
      }
      s.closed.clear()
    }
    this.pendingClosed.clear()
  }

  private flushActive (): void {
    this.active.set({ direction: 'outbound' }, this.activeOutbound)
    this.active.set({ direction: 'inbound' }, this.activeInbound)
  }

  private flushBytes (which: 'sent' | 'received'): void {
    const pending = which === 'sent' ? this.pendingSent : this.pendingReceived
    for (const r of this.live) {
      const tally = r.telemetry as Tally
      if (which === 'sent') {
        const now = r.bytesSent()
        if (now > tally.reportedSent) { tally.series.sent += now - tally.reportedSent; tally.reportedSent = now; pending.add(tally.series) }
      } else {
        const now = r.bytesReceived()
        if (now > tally.reportedReceived) { tally.series.received += now - tally.reportedReceived; tally.reportedReceived = now; pending.add(tally.series) }
      }
    }
    const counter = which === 'sent' ? this.sentTotal : this.receivedTotal
    for (const s of pending) {
      counter.inc(s.labels, which === 'sent' ? s.sent : s.received)
      if (which === 'sent') s.sent = 0
      else s.received = 0
    }
    pending.clear()
  }

  private addBytes (r: ConnectionRecord, tally: Tally): void {
    const sent = Math.max(r.bytesSent() - tally.reportedSent, 0)
    const received = Math.max(r.bytesReceived() - tally.reportedReceived, 0)
    // Always touch both series so a connection that moved no bytes still shows a 0 sample.
    const series = tally.series
    series.sent += sent
    series.received += received
    this.pendingSent.add(series)
    this.pendingReceived.add(series)
    tally.reportedSent += sent
    tally.reportedReceived += received
  }
}
