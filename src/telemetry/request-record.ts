import type { ConnectionRecord, SocketAddr } from './connection-record'

// What telemetry knows about one proxied HTTP request (L7). The HTTP layer (src/http/)
// fills one record per request and hands it to RequestTelemetry when the request ends,
// whichever way it ends; telemetry turns it into Istio's standard request metrics and one
// access-log line. The connection the request travelled on is named by `conn` (its
// workloads, principals, service and mTLS are the request's too).

/** `request_protocol`, as Istio writes it. */
export type RequestProtocol = 'http' | 'grpc'

/** Which proxy reports: the source node's (client side) or the destination node's (server side). */
export type Reporter = 'source' | 'destination'

export interface HttpRequestRecord {
  readonly reporter: Reporter
  readonly conn: ConnectionRecord
  readonly protocol: RequestProtocol
  /** HTTP version on the downstream side: '1.1' or '2'. */
  readonly httpVersion: '1.1' | '2'
  readonly method: string
  readonly authority: string
  /** The path as forwarded (normalized at the destination). */
  readonly path: string
  /** The response status sent downstream; 0 when none was sent (the downstream left first). */
  readonly responseCode: number
  /** grpc-status of the response (trailers, or headers of a trailers-only response); null when not gRPC or absent. */
  readonly grpcStatus: number | null
  /** Envoy-style response flags ('-' when none): UF upstream connect failure, UC upstream reset, UT timeout, DC downstream reset, NR no route, URX retry limit or budget, UO upstream overflow, FI/DI fault abort/delay, RL rate limited, UAEX/RBAC denied ('RBAC' is Envoy's flag for an authorization denial), ... */
  readonly responseFlags: string
  readonly durationMs: number
  /** Body bytes received from downstream / sent downstream (headers excluded, as Istio's request/response bytes). */
  readonly requestBytes: number
  readonly responseBytes: number
  /** gRPC messages sent by the client / by the server (grpc-messages.ts); undefined when not gRPC. */
  readonly requestMessages?: number
  readonly responseMessages?: number
  /** The endpoint the request was forwarded to; null when none was chosen. */
  readonly upstream: SocketAddr | null
  readonly traceId: string | null
  readonly requestId: string | null
  /** The authorization decision's log fields when a policy decided this request (destination). */
  readonly authz?: Readonly<Record<string, unknown>> | null
  /** The route rule that handled the request (src/routing/model.ts RouteRule.name); null or absent: none. */
  readonly routeName?: string | null
  /** Upstream attempts made under a route's plan, retries included; 0 or absent: the request had no plan. */
  readonly attempts?: number
}

export interface RequestTelemetry {
  /** One request ended: count it in Istio's request metrics and write its access-log line. Never throws. */
  requestEnded (r: HttpRequestRecord): void
}
