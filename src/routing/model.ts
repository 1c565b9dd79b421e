import type { UpstreamTarget } from '../http/context'
import type { PoolGate } from '../limits/types'
import type { RequestView } from '../policy/request-view'

// Ferry's compiled traffic-management model: what Gateway API routes (HTTPRoute,
// GRPCRoute attached to a Service: GAMMA) and Istio's VirtualService + DestinationRule
// become once validated (src/resources/) and resolved against a cluster snapshot
// (src/routing/compile-*.ts). Plain, frozen data: every worker compiles its own copy from
// the same publications; nothing here holds state that changes per request.
//
// Per request, the source node's proxy asks the service's routing for a RouteResult
// (src/routing/router.ts): a local answer (no matching rule: 404; a redirect; an injected
// abort) or a RequestPlan the engine (src/http/) carries out — headers, rewrite, timeouts,
// retries, mirrors — picking each attempt's endpoint through the plan.

/** How Gateway API (Exact, PathPrefix: whole segments, RegularExpression) and Istio (exact, prefix: a string prefix, regex) match a path. */
export type PathMatchType = 'Exact' | 'PathPrefix' | 'Prefix' | 'RegularExpression'

export interface PathMatch {
  readonly type: PathMatchType
  readonly value: string
}

/** A string match: Exact, Prefix (Istio only) or RegularExpression (RE2-compatible subset, anchored: full match). */
export interface StringMatch {
  readonly type: 'Exact' | 'Prefix' | 'RegularExpression'
  readonly value: string
}

export interface HeaderMatch {
  /** Lower case. */
  readonly name: string
  /** null: present with any value (Istio's `{}` under withoutHeaders / headers). */
  readonly match: StringMatch | null
  /** Istio's withoutHeaders: the rule matches when this header does NOT match. */
  readonly invert: boolean
}

export interface QueryMatch {
  /** Exact, case-sensitive name (Gateway API). */
  readonly name: string
  readonly match: StringMatch | null
}

/** GRPCRoute's method match: service and method of `/service/method`; either may be absent. */
export interface GrpcMethodMatch {
  readonly type: 'Exact' | 'RegularExpression'
  readonly service: string | null
  readonly method: string | null
}

/** One match (every present field must hold); a rule with no match matches every request. */
export interface RequestMatch {
  readonly path: PathMatch | null
  readonly method: string | null
  readonly headers: readonly HeaderMatch[]
  readonly query: readonly QueryMatch[]
  readonly grpc: GrpcMethodMatch | null
  /** Istio: the :authority / Host. */
  readonly authority: StringMatch | null
  /** Istio: the calling pod's labels must include these. */
  readonly sourceLabels: Readonly<Record<string, string>> | null
  /** Istio: the calling pod's namespace. */
  readonly sourceNamespace: string | null
}

/** Gateway API's HTTPHeaderFilter / Istio's headers.{request,response}: names lower case. */
export interface HeaderEdits {
  readonly set: ReadonlyArray<readonly [string, string]>
  readonly add: ReadonlyArray<readonly [string, string]>
  readonly remove: readonly string[]
}

/** How a path is replaced (Gateway API's HTTPPathModifier; Istio's rewrite.uri is ReplacePrefixMatch of the matched prefix, or ReplaceFullPath for an exact match). */
export interface PathModifier {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch'
  readonly value: string
}

export interface Redirect {
  readonly scheme: string | null
  readonly hostname: string | null
  readonly path: PathModifier | null
  readonly port: number | null
  /** 301, 302, 303, 307 or 308 (Gateway API default 302; Istio's redirectCode default 301). */
  readonly statusCode: number
}

export interface Rewrite {
  readonly hostname: string | null
  readonly path: PathModifier | null
}

/** A set of endpoints requests can go to: a Service port, optionally a DestinationRule subset of it. */
export interface BackendRef {
  /** "namespace/name" of the Service. */
  readonly service: string
  readonly port: number
  /** The subset's name and labels (an endpoint's pod must carry every label); null: every endpoint. */
  readonly subset: { readonly name: string, readonly labels: Readonly<Record<string, string>> } | null
}

export interface WeightedBackend {
  readonly backend: BackendRef
  /** ≥ 0; a rule's weights need not add up to 100. 0 never receives a request. */
  readonly weight: number
  /** Gateway API's per-backendRef filters (header modifiers). */
  readonly requestHeaders: HeaderEdits | null
  readonly responseHeaders: HeaderEdits | null
}

/** What a retry is for (Envoy's retry_on as Istio names it; Gateway API's `codes` are `statuses`). */
export interface RetryOn {
  readonly connectFailure: boolean
  /** A reset or disconnect before the response began. */
  readonly reset: boolean
  /** Any 5xx (Istio `5xx`). */
  readonly serverError: boolean
  /** 502, 503, 504 (Istio `gateway-error`). */
  readonly gatewayError: boolean
  /** 409 (Istio `retriable-4xx`). */
  readonly retriable4xx: boolean
  /** Explicit HTTP statuses (Gateway API `codes`, Istio `retriable-status-codes` + numbers). */
  readonly statuses: readonly number[]
  /** gRPC statuses by number (Istio `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`). */
  readonly grpcStatuses: readonly number[]
}

export interface RetryPolicy {
  /** Retries after the first attempt (Istio `attempts`; Gateway API `attempts`). 0: none. */
  readonly attempts: number
  /** Each attempt's timeout; null: only the request's timeout bounds it. */
  readonly perTryTimeoutMs: number | null
  readonly on: RetryOn
  /** Exponential backoff with full jitter: base, capped at max (Envoy: 25 ms, 10 × base). */
  readonly backoffBaseMs: number
  readonly backoffMaxMs: number
}

/**
 * A VirtualService rule's retry policy as lent to the GRPCRoute rules of a Service port
 * (src/routing/lent-retries.ts): the rule's match and the policy its `retries` set.
 */
export interface LentRetry {
  /** "namespace/name" of the VirtualService. */
  readonly ref: string
  /** How `ferry route check` names it: `VirtualService ns/name rule 0`. */
  readonly name: string
  readonly match: RequestMatch | null
  /** null: the rule sets no `retries`, or `attempts: 0` (the request is not retried). */
  readonly retry: RetryPolicy | null
}

/** Fault injection (Istio's HTTPFaultInjection), per request with the given percentages (0 … 100). */
export interface Fault {
  readonly delay: { readonly percent: number, readonly ms: number } | null
  /** httpStatus or grpcStatus (then answered as a gRPC trailers-only response). */
  readonly abort: { readonly percent: number, readonly httpStatus: number | null, readonly grpcStatus: number | null } | null
}

export interface Mirror {
  readonly backend: BackendRef
  /** 0 … 100: the share of requests copied. */
  readonly percent: number
}

export interface RouteRule {
  /** How access lines, /debug/config and `ferry route check` name it: `HTTPRoute ns/name rule 0`. */
  readonly name: string
  /** The route object's kind, "namespace/name" and rule index. */
  readonly source: { readonly kind: RouteKind, readonly ref: string, readonly rule: number }
  readonly matches: readonly RequestMatch[]
  /** Empty with no redirect/abort: the request gets 500 (Gateway API: backendRefs all invalid). */
  readonly backends: readonly WeightedBackend[]
  readonly requestHeaders: HeaderEdits | null
  readonly responseHeaders: HeaderEdits | null
  readonly redirect: Redirect | null
  readonly rewrite: Rewrite | null
  readonly mirrors: readonly Mirror[]
  /** The whole request, retries included (Gateway API timeouts.request, Istio timeout); null: none. */
  readonly timeoutMs: number | null
  /** Gateway API timeouts.backendRequest: each attempt; folded with retry.perTryTimeoutMs (the smaller). */
  readonly backendTimeoutMs: number | null
  readonly retry: RetryPolicy | null
  readonly fault: Fault | null
}

export type RouteKind = 'HTTPRoute' | 'GRPCRoute' | 'VirtualService'

/**
 * The routes of one Service port for one calling namespace, in the order they are tried:
 * Gateway API's precedence already applied (consumer routes of the caller's namespace
 * before producer routes; within them the specification's ordering of matches), or a
 * VirtualService's rules as written. The first rule with a matching match wins; none:
 * 404 (flag NR).
 */
export interface ServiceRoutes {
  readonly kind: RouteKind
  /** Every route object that contributed, "Kind namespace/name". */
  readonly objects: readonly string[]
  /** Flattened (rule, match index) in precedence order. */
  readonly entries: ReadonlyArray<{ readonly rule: RouteRule, readonly match: RequestMatch | null }>
}

export type LoadBalancerPolicy =
  | { readonly type: 'P2C_PEAK_EWMA' }
  | { readonly type: 'ROUND_ROBIN' }
  | { readonly type: 'LEAST_REQUEST' }
  | { readonly type: 'RANDOM' }
  | { readonly type: 'CONSISTENT_HASH', readonly key: { readonly header: string } | { readonly cookie: { readonly name: string, readonly ttlMs: number | null, readonly path: string | null } } | { readonly sourceIp: true } | { readonly queryParameter: string } }

export interface ConnectionPoolLimits {
  /** tcp.maxConnections: upstream connections to the backend, node-wide. */
  readonly maxConnections: number | null
  /** http.http1MaxPendingRequests: requests waiting for a connection, node-wide. */
  readonly maxPendingRequests: number | null
  /** http.http2MaxRequests: requests in flight, node-wide. */
  readonly maxRequests: number | null
  /** http.maxRequestsPerConnection: then the connection is closed (null: no limit). */
  readonly maxRequestsPerConnection: number | null
  /** tcp.connectTimeout: a longer connect fails (flag UF). */
  readonly connectTimeoutMs: number | null
  /** http.idleTimeout, else tcp.idleTimeout: an idle upstream connection is closed after it. */
  readonly idleTimeoutMs: number | null
}

/**
 * A backend's connection-pool limits as its upstream connections carry them out
 * (src/http/upstream-pool.ts): attempts with the same policy share pools, others never.
 */
export interface ConnectionPolicy {
  /** The backend and its limits: pools are keyed by it with the endpoint. */
  readonly key: string
  readonly limits: ConnectionPoolLimits
  /** The node-wide count of connections (tcp.maxConnections); null: not counted. */
  readonly gate: PoolGate | null
}

export interface OutlierDetection {
  readonly consecutive5xxErrors: number | null
  readonly consecutiveGatewayErrors: number | null
  readonly consecutiveLocalOriginFailures: number | null
  readonly intervalMs: number
  readonly baseEjectionTimeMs: number
  readonly maxEjectionPercent: number
  readonly minHealthPercent: number
}

/** A DestinationRule's traffic policy for one backend (its subset's policy merged over the rule's). */
export interface TrafficPolicy {
  /** "DestinationRule ns/name" (and `subset X`) that set it, or null: the defaults. */
  readonly source: string | null
  readonly loadBalancer: LoadBalancerPolicy
  readonly connectionPool: ConnectionPoolLimits | null
  readonly outlierDetection: OutlierDetection | null
}

// ---- per request -------------------------------------------------------------------

/** What routing sees of a request at the source: authorization's view plus the query and the caller. */
export interface RoutedRequestView extends RequestView {
  /** The raw query string after '?', '' when none. */
  readonly query: string
  /** The request's protocol: 'grpc' when content-type is application/grpc*. */
  readonly grpc: boolean
}

/** How one attempt ended, for the balancer (latency), outlier detection and the circuit breaker. */
export type AttemptOutcome =
  | { readonly kind: 'response', readonly status: number, readonly grpcStatus: number | null }
  | { readonly kind: 'connect_failure' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'canceled' }

/** One attempt's endpoint, reserved: `end` must be called exactly once. */
export interface Attempt {
  readonly target: UpstreamTarget
  /** How its upstream connections are limited (the backend's connection pool); absent or null: not at all. */
  readonly connections?: ConnectionPolicy | null
  end (outcome: AttemptOutcome): void
}

/**
 * Why no attempt can be made: UH no healthy endpoint (503), UO the backend's pending or
 * in-flight limit is full (503, circuit breaking).
 */
export type AttemptRefusal = 'UH' | 'UO'

export interface RequestPlan {
  /** The rule that matched (access line `route_name`), null: the service has no routes. */
  readonly rule: RouteRule | null
  /** The chosen backend (weighted pick, made once per request; retries stay on it). */
  readonly backend: BackendRef
  /** The request target after URLRewrite (path and query), or null: unchanged. */
  readonly path: string | null
  /** The Host / :authority after rewrite, or null: unchanged. */
  readonly authority: string | null
  /** Rule and backend header edits combined, applied in that order. */
  readonly requestHeaders: readonly HeaderEdits[]
  readonly responseHeaders: readonly HeaderEdits[]
  readonly timeoutMs: number | null
  /** The per-attempt timeout (backendRequest / perTryTimeout, the smaller). */
  readonly perTryTimeoutMs: number | null
  readonly retry: RetryPolicy | null
  /** The injected delay for this request (rolled), 0: none. */
  readonly delayMs: number
  /** The mirrors this request is copied to (rolled). */
  readonly mirrors: readonly BackendRef[]
  /**
   * The next attempt: an endpoint of the backend (avoiding `tried` when another is
   * eligible), admitted by the node-wide connection-pool limits; or why not.
   */
  attempt (tried: readonly UpstreamTarget[]): Attempt | AttemptRefusal
  /**
   * Whether a retry may be sent (the node-wide retry budget): the milliseconds it must
   * wait at least (its backoff may be longer), or null: give up, flag URX. Takes from the
   * budget unless null.
   */
  retryDelay (): number | null
  /** A target for a mirror copy (no budget, no retries), null: none eligible. */
  mirrorTarget (backend: BackendRef): UpstreamTarget | null
}

/** The routing decision for one request. */
export type RouteResult =
  | { readonly kind: 'forward', readonly plan: RequestPlan }
  /** No rule matched on a service that has routes (404, flag NR). */
  | { readonly kind: 'not_found', readonly routes: ServiceRoutes }
  /** RequestRedirect: `location` with `status`. */
  | { readonly kind: 'redirect', readonly rule: RouteRule, readonly status: number, readonly location: string }
  /** Fault abort (flag FI) or a rule with no usable backend (500). */
  | { readonly kind: 'abort', readonly rule: RouteRule, readonly httpStatus: number, readonly grpcStatus: number | null, readonly flag: 'FI' | 'NR' }
