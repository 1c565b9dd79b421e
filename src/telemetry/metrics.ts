import { Counter, Gauge, Registry } from 'prom-client'
import type { ConnectionRecord, Direction } from './connection-record'

// Istio-like TCP metrics on a registry of our own (never prom-client's global one, so
// two agents in one test process do not share counters).
//
// Byte counters follow Istio/Envoy: `sent` is what the proxy sent to the source
// (response direction), `received` is what it received from the source (request
// direction). Bytes of live connections are added at scrape time (a `collect` hook
// walks the live set), so long connections show up before they close and the data
// path never touches a counter per chunk.

const UNKNOWN = 'unknown'
// Istio's names: source_principal / destination_principal are SPIFFE IDs ("unknown" when
// not known), connection_security_policy is mutual_tls (through the tunnel) or none.
const CONN_LABELS = ['direction', 'source_workload', 'source_namespace', 'source_principal', 'destination_service', 'destination_workload',
  'destination_namespace', 'destination_principal', 'connection_security_policy'] as const
type ConnLabel = typeof CONN_LABELS[number]
type ConnLabels = Record<ConnLabel, string>

export const METRIC_NAMES = Object.freeze({
  opened: 'ferry_tcp_connections_opened_total',
  closed: 'ferry_tcp_connections_closed_total',
  sent: 'ferry_tcp_sent_bytes_total',
  received: 'ferry_tcp_received_bytes_total',
  active: 'ferry_tcp_connections_active',
  enrolledPods: 'ferry_enrolled_pods',
  tunnelRefusals: 'ferry_tunnel_refusals_total',
  authzDenied: 'ferry_authz_denied_total'
})

/** Labels of one tunnel refusal: which end refused, at which stage, and why (the tunnel library's reason). */
export interface TunnelRefusalLabels {
  readonly side: 'server' | 'client'
  readonly stage: string
  readonly reason: string
}

/** Per-connection bookkeeping kept in ConnectionRecord.telemetry. */
class Tally {
  reportedSent = 0
  reportedReceived = 0
  constructor (readonly labels: ConnLabels) {}
}

export class ProxyMetrics {
  readonly registry: Registry
  private readonly openedTotal: Counter<ConnLabel>
  private readonly closedTotal: Counter<ConnLabel | 'result'>
  private readonly sentTotal: Counter<ConnLabel>
  private readonly receivedTotal: Counter<ConnLabel>
  private readonly active: Gauge<'direction'>
  private readonly enrolled: Gauge
  private readonly refusals: Counter<keyof TunnelRefusalLabels>
  private readonly denied: Counter<'policy' | 'basis'>
  private readonly live = new Set<ConnectionRecord>()

  constructor (registry: Registry = new Registry()) {
    this.registry = registry
    const registers = [registry]
    const labelNames = [...CONN_LABELS]
    this.openedTotal = new Counter({ name: METRIC_NAMES.opened, help: 'TCP connections opened through the proxy', labelNames, registers })
    this.closedTotal = new Counter({ name: METRIC_NAMES.closed, help: 'TCP connections closed, by result', labelNames: [...labelNames, 'result'], registers })
    const self = this
    this.sentTotal = new Counter({ name: METRIC_NAMES.sent, help: 'Bytes sent by the proxy to the source (response direction)', labelNames, registers, collect () { self.flush('sent') } })
    this.receivedTotal = new Counter({ name: METRIC_NAMES.received, help: 'Bytes received by the proxy from the source (request direction)', labelNames, registers, collect () { self.flush('received') } })
    this.active = new Gauge({ name: METRIC_NAMES.active, help: 'TCP connections currently open through the proxy', labelNames: ['direction'], registers })
    this.enrolled = new Gauge({ name: METRIC_NAMES.enrolledPods, help: 'Pods on this node enrolled in capture', registers })
    this.refusals = new Counter({ name: METRIC_NAMES.tunnelRefusals, help: 'Tunnel connections and streams refused, by side, stage and reason (other-ca, expired, wrong-identity, no-certificate, ...)', labelNames: ['side', 'stage', 'reason'], registers })
    this.denied = new Counter({ name: METRIC_NAMES.authzDenied, help: 'Inbound connections denied by authorization (or closed when a new policy denied them), by deciding policy and basis', labelNames: ['policy', 'basis'], registers })
    for (const d of ['outbound', 'inbound'] as Direction[]) this.active.set({ direction: d }, 0)
  }

  /** A connection denied (or closed) by authorization: the deciding policy ("-" for the no-ALLOW-matched default). */
  authzDenied (policy: string, basis: string): void {
    this.denied.inc({ policy, basis })
  }

  tunnelRefused (labels: TunnelRefusalLabels): void {
    this.refusals.inc({ side: labels.side, stage: labels.stage, reason: labels.reason })
  }

  /** A connection was accepted (its destination is not known yet). */
  connectionAccepted (r: ConnectionRecord): void {
    this.active.inc({ direction: r.direction })
  }

  /** Route decided (or the connection failed before it could be): labels are final. */
  connectionOpened (r: ConnectionRecord): void {
    if (r.telemetry instanceof Tally) return
    const tally = new Tally(labelsOf(r))
    r.telemetry = tally
    this.openedTotal.inc(tally.labels)
    this.live.add(r)
  }

  connectionClosed (r: ConnectionRecord): void {
    this.connectionOpened(r)
    const tally = r.telemetry as Tally
    this.live.delete(r)
    this.addBytes(r, tally)
    this.closedTotal.inc({ ...tally.labels, result: r.result ?? UNKNOWN })
    this.active.dec({ direction: r.direction })
  }

  setEnrolledPods (n: number): void { this.enrolled.set(n) }

  async text (): Promise<string> { return await this.registry.metrics() }

  private flush (which: 'sent' | 'received'): void {
    for (const r of this.live) {
      const tally = r.telemetry as Tally
      if (which === 'sent') {
        const now = r.bytesSent()
        if (now > tally.reportedSent) { this.sentTotal.inc(tally.labels, now - tally.reportedSent); tally.reportedSent = now }
      } else {
        const now = r.bytesReceived()
        if (now > tally.reportedReceived) { this.receivedTotal.inc(tally.labels, now - tally.reportedReceived); tally.reportedReceived = now }
      }
    }
  }

  private addBytes (r: ConnectionRecord, tally: Tally): void {
    const sent = r.bytesSent() - tally.reportedSent
    const received = r.bytesReceived() - tally.reportedReceived
    // Always touch both series so a connection that moved no bytes still shows a 0 sample.
    this.sentTotal.inc(tally.labels, Math.max(sent, 0))
    this.receivedTotal.inc(tally.labels, Math.max(received, 0))
    tally.reportedSent += Math.max(sent, 0)
    tally.reportedReceived += Math.max(received, 0)
  }
}

function labelsOf (r: ConnectionRecord): ConnLabels {
  return {
    direction: r.direction,
    source_workload: r.source.workload ?? UNKNOWN,
    source_namespace: r.source.namespace ?? UNKNOWN,
    source_principal: r.sourcePrincipal ?? UNKNOWN,
    destination_service: r.service ?? UNKNOWN,
    destination_workload: r.destination?.workload ?? UNKNOWN,
    destination_namespace: r.destination?.namespace ?? UNKNOWN,
    destination_principal: r.destinationPrincipal ?? UNKNOWN,
    connection_security_policy: r.mtls ? 'mutual_tls' : 'none'
  }
}
