import type { ConnResult } from '../telemetry/connection-record'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { Conn } from './conn'

// Account stage: the three moments telemetry hears about, each exactly once.

export function accepted (conn: Conn, telemetry: ConnTelemetry): void {
  // Errors on the downstream socket before the relay owns it (a reset while we route
  // or connect) are recorded here rather than crashing the process.
  conn.downstream?.on('error', (err: NodeJS.ErrnoException) => {
    if (conn.errorCode === null) conn.errorCode = err.code ?? 'EUNKNOWN'
  })
  telemetry.accepted(conn)
}

export function opened (conn: Conn, telemetry: ConnTelemetry): void {
  telemetry.opened(conn)
}

export function finish (conn: Conn, telemetry: ConnTelemetry, result: ConnResult, errorCode: string | null, errorReason: string | null = null): void {
  if (!conn.end(result, errorCode, errorReason)) return
  telemetry.opened(conn)
  telemetry.closed(conn)
}

/** Ends a connection that will not be relayed: reset the source's end (the application sees ECONNRESET) and account. */
export function reject (conn: Conn, telemetry: ConnTelemetry, result: ConnResult, errorCode: string | null, errorReason: string | null = null): void {
  const s = conn.downstream
  if (s !== null && !s.destroyed) s.resetAndDestroy()
  finish(conn, telemetry, result, errorCode, errorReason)
}
