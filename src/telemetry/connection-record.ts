// What telemetry knows about a proxied connection. The proxy's Conn implements this;
// telemetry depends only on this shape, never on the proxy (layers point downwards).

export type Direction = 'outbound' | 'inbound'

/**
 * How a connection ended; also the `result` label and access-log field.
 * `denied_plaintext`: a plaintext connection from outside the mesh to a STRICT pod, reset.
 * `denied`: an AuthorizationPolicy denied it (reset, or the tunnel stream refused with 403), or a new policy closed it.
 */
export type ConnResult = 'ok' | 'connect_error' | 'connect_timeout' | 'reset' | 'no_endpoints' | 'no_original_dst' | 'denied_plaintext' | 'denied'

export const CONN_RESULTS: readonly ConnResult[] = Object.freeze(['ok', 'connect_error', 'connect_timeout', 'reset', 'no_endpoints', 'no_original_dst', 'denied_plaintext', 'denied'])

export interface Peer {
  pod: string | null
  namespace: string | null
  workload: string | null
  ip: string
  port: number
}

export interface WorkloadRef {
  readonly pod: string
  readonly namespace: string
  readonly workload: string
}

export interface SocketAddr {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

export interface ConnectionRecord {
  readonly direction: Direction
  readonly source: Peer
  readonly originalDst: SocketAddr | null
  /** "name.namespace" of the destination Service, when the original destination was a VIP. */
  readonly service: string | null
  readonly endpoint: SocketAddr | null
  readonly destination: WorkloadRef | null
  /** SPIFFE ID of the source: verified (tunnel), or known (a pod of this node); null when unknown or unauthenticated. */
  readonly sourcePrincipal: string | null
  /** SPIFFE ID of the destination: verified (tunnel) or known (a pod of this node); null when not meshed. */
  readonly destinationPrincipal: string | null
  /** The connection crossed the network inside the mutual-TLS tunnel. */
  readonly mtls: boolean
  /** The authorization decision's log fields (src/policy decisionLogFields), when a policy applied. */
  readonly authz?: Readonly<Record<string, unknown>> | null
  readonly result: ConnResult | null
  readonly errorCode: string | null
  /** A finer reason next to errorCode, e.g. a tunnel's "wrong-identity" or "status 503". */
  readonly errorReason: string | null
  /** Bytes read from the source (request direction). */
  bytesReceived (): number
  /** Bytes written to the source (response direction). */
  bytesSent (): number
  /** Milliseconds since the connection was accepted. */
  durationMs (): number
  /** Scratch slot owned by telemetry (cached metric labels and reported byte counts). */
  telemetry: unknown
}

/** "ip:port", with brackets for IPv6. */
export function formatAddr (a: { address: string, port: number, family: 4 | 6 }): string {
  return a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}
