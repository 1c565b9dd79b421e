import type { RequestRateLimit } from '../limits/types'
import type { RequestView } from '../policy/request-view'
import type { RouteResult, RoutedRequestView } from '../routing/model'
import type { RelayEnd } from '../proxy/relay'
import type { ConnectionRecord, SocketAddr } from '../telemetry/connection-record'
import type { Reporter } from '../telemetry/request-record'

// What the engine is told about one downstream connection and the upstreams its requests
// may go to. The proxy (src/proxy/l7-*.ts) builds these; the engine only calls them.

/** HTTP version spoken on a hop (on a detect port the upstream follows the downstream; on a declared one, the port: DeclaredVersion). */
export type HttpVersion = 'http1' | 'http2'

/**
 * A declared L7 port's protocol as the engine serves it (engine.ts serveDeclared): the
 * upstream speaks this; on http1 and http2 ports the client may speak either version
 * (translated per request), on grpc ports HTTP/2 only.
 */
export type DeclaredVersion = HttpVersion | 'grpc'

/** The outcome of the destination's path normalization: the path to forward, or why it is refused (400). */
export type NormalizedPath = { readonly path: string } | { readonly reject: string }
export type NormalizePath = (raw: string) => NormalizedPath

/** Per-request authorization at the destination: false denies (the caller's record `authz` then says why). */
export interface RequestAuthorizer {
  /** The connection record whose `authz` the decision is written to. */
  readonly record: ConnectionRecord
  authorize (view: RequestView): boolean
  /** The destination pod's local rate limit, taken after authorization; null: none. */
  readonly rateLimit: RequestRateLimit | null
}

/** One endpoint a request may be forwarded to, and how to reach it. */
export interface UpstreamTarget {
  /**
   * Pool key: requests with the same key share upstream connections. It must name
   * everything a connection carries besides the endpoint — at the source, the source's
   * identity (a tunnel stream presents the source's SVID): never share across sources.
   */
  readonly key: string
  readonly address: SocketAddr
  /** The request's connection as telemetry reports it (the endpoint's workload and principal). */
  readonly record: ConnectionRecord
  /** Opens one upstream connection; rejects with an error whose `code` names the failure. */
  dial (): Promise<RelayEnd>
  /**
   * The destination's own handling when no second proxy will see the request (same-node):
   * each request is authorized with the destination pod's policies and reported a second
   * time, as the destination (reporter "destination", this record).
   */
  readonly local: RequestAuthorizer | null
}

export interface HttpDownstream {
  readonly reporter: Reporter
  /** The downstream connection's record (who the client is). */
  readonly record: ConnectionRecord
  /** The endpoint for the next request (re-read per request); null: none (503, flag UH). */
  pick (): UpstreamTarget | null
  /** Destination: each request is authorized (403 / PERMISSION_DENIED when denied). */
  readonly authorizer: RequestAuthorizer | null
  /** Destination: the path is normalized before authorization and forwarding. */
  readonly normalizePath: NormalizePath | null
  /**
   * Source: the request's route (src/routing/model.ts): a plan whose attempts pick the
   * endpoints, or a local answer. null: the service has no routing; `pick` chooses.
   */
  readonly route: ((view: RoutedRequestView) => RouteResult) | null
  /** Destination: the destination pod's local rate limit (429 when its bucket is empty). */
  readonly rateLimit: RequestRateLimit | null
}

/** Marks an error as an upstream connect failure (flag UF) rather than a reset (UC). */
export const CONNECT_FAILED = Symbol('ferry.http.connectFailed')

export function markConnectFailure (err: unknown): Error {
  const e = (err instanceof Error ? err : new Error(String(err))) as Error & { [CONNECT_FAILED]?: true }
  e[CONNECT_FAILED] = true
  return e
}

export function isConnectFailure (err: unknown): boolean {
  return (err as { [CONNECT_FAILED]?: true } | null)?.[CONNECT_FAILED] === true
}
