import type { ConnResult, ConnectionRecord, Direction, Peer, SocketAddr, WorkloadRef } from '../telemetry/connection-record'
import type { RelayEnd } from './relay'

// The state of one proxied connection as it passes through the stages
// (capture → identify → original dst → route → path → connect/tunnel → relay → account).
// One object per connection with a fixed shape; stages fill in their fields.
//
// `downstream` is the source's end: the application's socket (outbound, plaintext
// inbound) or the tunnel stream (inbound from a peer node, set once the CONNECT is
// accepted). Byte counts are read from it.

export type Clock = () => number

export class Conn implements ConnectionRecord {
  readonly source: Peer = { pod: null, namespace: null, workload: null, ip: '', port: 0 }
  originalDst: SocketAddr | null = null
  service: string | null = null
  endpoint: SocketAddr | null = null
  destination: WorkloadRef | null = null
  sourcePrincipal: string | null = null
  destinationPrincipal: string | null = null
  mtls = false
  authz: Record<string, unknown> | null = null
  result: ConnResult | null = null
  errorCode: string | null = null
  errorReason: string | null = null
  upstream: RelayEnd | null = null
  telemetry: unknown = null
  private readonly startedAt: number
  private endedAt = -1

  constructor (readonly direction: Direction, public downstream: RelayEnd | null, private readonly clock: Clock) {
    this.startedAt = clock()
  }

  /** Bytes that went between the apps without passing through the proxy (a splice). */
  splicedReceived = 0
  splicedSent = 0

  bytesReceived (): number { return (this.downstream?.bytesRead ?? 0) + this.splicedReceived }
  bytesSent (): number { return (this.downstream?.bytesWritten ?? 0) + this.splicedSent }
  durationMs (): number { return (this.endedAt < 0 ? this.clock() : this.endedAt) - this.startedAt }

  /** Marks the end; returns false if it had already ended (a connection ends once). */
  end (result: ConnResult, errorCode: string | null, errorReason: string | null = null): boolean {
    if (this.result !== null) return false
    this.result = result
    this.errorCode = errorCode
    this.errorReason = errorReason
    this.endedAt = this.clock()
    return true
  }
}

export function familyOfSocket (s: { readonly remoteFamily?: string }): 4 | 6 {
  return s.remoteFamily === 'IPv6' ? 6 : 4
}

/** errno-style code of an error ("ECONNREFUSED"), FerryError code, or "EUNKNOWN". */
export function errorCodeOf (err: unknown): string {
  const e = err as { errno?: unknown, code?: unknown }
  if (typeof e?.errno === 'string') return e.errno
  if (typeof e?.code === 'string') return e.code
  return 'EUNKNOWN'
}
