// The tracing contract the HTTP layer (src/http/) calls per request. One implementation
// (src/telemetry/tracing/) reads and writes W3C trace context and B3, decides sampling,
// makes spans with OpenTelemetry's SDK and exports them over OTLP; `NO_TRACING` costs
// nothing and still adds `x-request-id`.

/** Request headers as Node gives them (lower-case names). */
export type HeaderBag = Readonly<Record<string, string | string[] | undefined>>

export interface RequestSpanStart {
  /** 'client' at the source node's proxy, 'server' at the destination's. */
  readonly kind: 'client' | 'server'
  readonly method: string
  readonly authority: string
  readonly path: string
  readonly scheme: 'http'
  readonly protocol: 'http' | 'grpc'
  /** HTTP version of the request as received ('1.1' or '2'). */
  readonly httpVersion: '1.1' | '2'
  readonly sourceWorkload: string | null
  readonly sourceNamespace: string | null
  readonly sourcePrincipal: string | null
  readonly destinationWorkload: string | null
  readonly destinationNamespace: string | null
  readonly destinationPrincipal: string | null
  /** "name.namespace.svc.cluster.local" when the request was for a Service. */
  readonly destinationService: string | null
}

export interface RequestSpanEnd {
  readonly responseCode: number
  readonly grpcStatus: number | null
  /** The upstream endpoint "address:port", when one was chosen. */
  readonly upstream: string | null
  readonly responseFlags: string
}

export interface RequestSpan {
  /** 32 hex digits; null when the request carries no trace and none was started. */
  readonly traceId: string | null
  readonly requestId: string
  /**
   * Headers to set on the forwarded request, replacing any of the same name: traceparent
   * (parent = this span when sampled, else the incoming one passed on), tracestate, the
   * B3 headers present on the request (updated to match), x-request-id when it was missing.
   */
  readonly forward: Readonly<Record<string, string>>
  /** Names of incoming headers to remove before forwarding (e.g. a stale B3 form). */
  readonly remove: readonly string[]
  /** Ends the span (a no-op for an unsampled request). Called once; never throws. */
  end (result: RequestSpanEnd): void
}

export interface RequestTracer {
  start (headers: HeaderBag, attrs: RequestSpanStart): RequestSpan
}
