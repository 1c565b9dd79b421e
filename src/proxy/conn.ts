import type { Socket } from 'node:net'
import type { ConnResult, ConnectionRecord, Direction, Peer, SocketAddr, WorkloadRef } from '../telemetry/connection-record'

// The state of one proxied connection as it passes through the stages
// (capture → identify → original dst → route → connect → relay → account).
// One object per connection with a fixed shape; stages fill in their fields.

export type Clock = () => number

export class Conn implements ConnectionRecord {
  readonly source: Peer = { pod: null, namespace: null, workload: null, ip: '', port: 0 }
  originalDst: SocketAddr | null = null
  service: string | null = null
  endpoint: SocketAddr | null = null
  destination: WorkloadRef | null = null
  result: ConnResult | null = null
  errorCode: string | null = null
  upstream: Socket | null = null
  telemetry: unknown = null
  private readonly startedAt: number
  private endedAt = -1

  constructor (readonly direction: Direction, readonly downstream: Socket, private readonly clock: Clock) {
    this.startedAt = clock()
  }

  bytesReceived (): number { return this.downstream.bytesRead }
  bytesSent (): number { return this.downstream.bytesWritten }
  durationMs (): number { return (this.endedAt < 0 ? this.clock() : this.endedAt) - this.startedAt }

  /** Marks the end; returns false if it had already ended (a connection ends once). */
  end (result: ConnResult, errorCode: string | null): boolean {
    if (this.result !== null) return false
    this.result = result
    this.errorCode = errorCode
    this.endedAt = this.clock()
    return true
  }
}

export function familyOfSocket (s: Socket): 4 | 6 {
  return s.remoteFamily === 'IPv6' ? 6 : 4
}

/** errno-style code of an error ("ECONNREFUSED"), FerryError code, or "EUNKNOWN". */
export function errorCodeOf (err: unknown): string {
  const e = err as { errno?: unknown, code?: unknown }
  if (typeof e?.errno === 'string') return e.errno
  if (typeof e?.code === 'string') return e.code
  return 'EUNKNOWN'
}
