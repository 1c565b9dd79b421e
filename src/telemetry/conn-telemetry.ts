import type { AccessLog } from './access-log'
import type { ConnectionRecord } from './connection-record'
import type { ProxyMetrics } from './metrics'

// The narrow interface the proxy reports through: three moments of a connection.

export interface ConnTelemetry {
  /** Accepted from the pod; nothing is known about its destination yet. */
  accepted (r: ConnectionRecord): void
  /** Routed: source and destination labels are final. */
  opened (r: ConnectionRecord): void
  /** Closed, with `result` set. Called exactly once per accepted connection. */
  closed (r: ConnectionRecord): void
}

export function createConnTelemetry (metrics: ProxyMetrics, accessLog: AccessLog): ConnTelemetry {
  return {
    accepted: (r) => { metrics.connectionAccepted(r) },
    opened: (r) => { metrics.connectionOpened(r) },
    closed: (r) => { metrics.connectionClosed(r); accessLog(r) }
  }
}
