import type { ConnectionRecord } from '../telemetry/connection-record'
import { formatAddr } from '../telemetry/connection-record'
import { serviceFqdn } from '../telemetry/cluster-names'
import { GrpcMessages } from '../telemetry/grpc-messages'
import type { HttpRequestRecord, Reporter, RequestProtocol, RequestTelemetry } from '../telemetry/request-record'
import type { HeaderBag, RequestSpan, RequestSpanStart, RequestTracer } from '../telemetry/request-tracing'
import type { RateLimitVerdict } from '../limits/types'
import type { UpstreamTarget } from './context'

// One request's accounting, from its headers to its end, whichever way it ends: the
// request record (request-record.ts) handed to RequestTelemetry once, and the span
// (request-tracing.ts) ended once. The engine's forwarders fill the fields as the
// exchange goes; `end()` is the one place a request ends (idempotent).

export type Clock = () => number

export interface RequestSinks {
  readonly telemetry: RequestTelemetry
  readonly tracer: RequestTracer
  readonly clock: Clock
  /** The Services' DNS domain (cluster-names.ts). */
  readonly clusterDomain: string
}

export class RequestState {
  responseCode = 0
  grpcStatus: number | null = null
  flags = '-'
  requestBytes = 0
  responseBytes = 0
  target: UpstreamTarget | null = null
  span: RequestSpan | null = null
  /** The same-node destination's span and decision fields (target.local), when there is one. */
  localSpan: RequestSpan | null = null
  authz: Readonly<Record<string, unknown>> | null = null
  localAuthz: Readonly<Record<string, unknown>> | null = null
  /** The local rate limit's verdict when one applied (its x-ratelimit-* headers go on the response). */
  rateLimit: RateLimitVerdict | null = null
  /** The route rule that handled the request (RouteRule.name), null: none. */
  routeName: string | null = null
  /** Upstream attempts made under a RequestPlan (retries included); 0: the request had no plan. */
  attempts = 0
  /** A gRPC call's message counts (the forwarder feeds them its body chunks); null when not gRPC. */
  readonly messages: GrpcMessages | null
  private readonly startedAt: number
  private ended = false

  constructor (
    private readonly sinks: RequestSinks,
    readonly reporter: Reporter,
    readonly record: ConnectionRecord,
    readonly protocol: RequestProtocol,
    readonly httpVersion: '1.1' | '2',
    readonly method: string,
    readonly authority: string,
    public path: string
  ) {
    this.startedAt = sinks.clock()
    this.messages = protocol === 'grpc' ? new GrpcMessages() : null
  }

  /** Starts the span of this hop (client at the source, server at the destination). */
  startSpan (headers: HeaderBag): RequestSpan {
    const r = this.target?.record ?? this.record
    this.span = this.sinks.tracer.start(headers, this.spanStart(this.reporter === 'source' ? 'client' : 'server', r))
    return this.span
  }

  /** What a span of this request starts with, for the hop whose connection record is `r`. */
  private spanStart (kind: RequestSpanStart['kind'], r: ConnectionRecord): RequestSpanStart {
    return {
      kind,
      method: this.method,
      authority: this.authority,
      path: this.path,
      scheme: 'http',
      protocol: this.protocol,
      httpVersion: this.httpVersion,
      sourceWorkload: r.source.workload,
      sourceNamespace: r.source.namespace,
      sourcePrincipal: r.sourcePrincipal,
      destinationWorkload: r.destination?.workload ?? null,
      destinationNamespace: r.destination?.namespace ?? null,
      destinationPrincipal: r.destinationPrincipal,
      destinationService: r.service === null ? null : serviceFqdn(r.service, this.sinks.clusterDomain)
    }
  }

  /**
   * Same-node: the destination's server span, child of the forwarded headers, which it
   * then updates in place (its trace headers replace the client span's), so that the
   * application sees the server span as its parent, as it does across nodes.
   */
  startLocalSpan (headers: Record<string, string | string[] | number | undefined>): void {
    const r = this.target?.local?.record
    if (r === undefined) return
    const span = this.localSpan = this.sinks.tracer.start(headers as HeaderBag, this.spanStart('server', r))
    for (const name of span.remove) delete headers[name]
    const fwd = span.forward
    for (const name in fwd) headers[name] = fwd[name]
  }

  /** Sets the flag unless one is set already (the first cause wins). */
  flag (f: string): void {
    if (this.flags === '-') this.flags = f
  }

  /** Adds a flag to those already set, as Envoy lists several (`UF,URX`). */
  alsoFlag (f: string): void {
    this.flags = this.flags === '-' ? f : this.flags + ',' + f
  }

  /** Ends the request: one record (two on the same-node path), spans ended. Later calls do nothing. */
  end (): void {
    if (this.ended) return
    this.ended = true
    const durationMs = this.sinks.clock() - this.startedAt
    const target = this.target
    const upstream = target === null ? null : target.address
    const endResult = { responseCode: this.responseCode, grpcStatus: this.grpcStatus, upstream: upstream === null ? null : formatAddr(upstream), responseFlags: this.flags }
    const local = target?.local ?? null
    if (local !== null) {
      this.emit('destination', local.record, durationMs, this.localSpan, this.localAuthz)
      try { this.localSpan?.end(endResult) } catch {}
    }
    this.emit(this.reporter, target?.record ?? this.record, durationMs, this.span, this.authz)
    try { this.span?.end(endResult) } catch {}
  }

  private emit (reporter: Reporter, conn: ConnectionRecord, durationMs: number, span: RequestSpan | null, authz: Readonly<Record<string, unknown>> | null): void {
    const r: HttpRequestRecord = {
      reporter,
      conn,
      protocol: this.protocol,
      httpVersion: this.httpVersion,
      method: this.method,
      authority: this.authority,
      path: this.path,
      responseCode: this.responseCode,
      grpcStatus: this.grpcStatus,
      responseFlags: this.flags,
      durationMs,
      requestBytes: this.requestBytes,
      responseBytes: this.responseBytes,
      // Plain fields (undefined when not gRPC): one record shape, no spread per request.
      requestMessages: this.messages?.request.messages,
      responseMessages: this.messages?.response.messages,
      upstream: this.target?.address ?? null,
      traceId: span?.traceId ?? null,
      requestId: span?.requestId ?? null,
      authz,
      routeName: this.routeName,
      attempts: this.attempts
    }
    try { this.sinks.telemetry.requestEnded(r) } catch {}
  }
}


/** `request_protocol` of a request by its content type. */
export function protocolOf (contentType: string | undefined): RequestProtocol {
  return contentType !== undefined && contentType.startsWith('application/grpc') ? 'grpc' : 'http'
}
