// The `spec` of the traffic-management kinds as their users write them, with the official
// field names: Gateway API v1 (HTTPRoute with the experimental `retry`, GRPCRoute) and
// Istio networking v1 (VirtualService, DestinationRule). src/resources/ validates
// documents against its schemas and types a resource's `spec` with these; the compilers
// (src/routing/compile-gateway.ts, compile-istio.ts) read them. Every field is optional
// where the specification makes it so; durations are the specification's strings
// ("500ms", "1s"; Istio also "1.5s").

// ---- Gateway API (gateway.networking.k8s.io/v1) -------------------------------------

/** ParentReference: GAMMA attaches a route to a Service (group "" / "core", kind "Service"). */
export interface ParentReference {
  readonly group?: string
  readonly kind?: string
  readonly namespace?: string
  readonly name: string
  readonly sectionName?: string
  /** A Service port; absent: every port of the Service. */
  readonly port?: number
}

/** BackendObjectReference: a Service (and port) in the route's or another namespace. */
export interface BackendObjectReference {
  readonly group?: string
  readonly kind?: string
  readonly name: string
  readonly namespace?: string
  readonly port?: number
}

export interface HTTPHeader {
  readonly name: string
  readonly value: string
}

/** HTTPHeaderFilter (RequestHeaderModifier, ResponseHeaderModifier). */
export interface HTTPHeaderFilter {
  readonly set?: readonly HTTPHeader[]
  readonly add?: readonly HTTPHeader[]
  readonly remove?: readonly string[]
}

export type HTTPPathModifierType = 'ReplaceFullPath' | 'ReplacePrefixMatch'

export interface HTTPPathModifier {
  readonly type: HTTPPathModifierType
  readonly replaceFullPath?: string
  readonly replacePrefixMatch?: string
}

export interface HTTPRequestRedirectFilter {
  readonly scheme?: 'http' | 'https' | string
  readonly hostname?: string
  readonly path?: HTTPPathModifier
  readonly port?: number
  readonly statusCode?: 301 | 302 | 303 | 307 | 308 | number
}

export interface HTTPURLRewriteFilter {
  readonly hostname?: string
  readonly path?: HTTPPathModifier
}

export interface Fraction {
  readonly numerator: number
  /** Default 100. */
  readonly denominator?: number
}

export interface HTTPRequestMirrorFilter {
  readonly backendRef: BackendObjectReference
  /** 0 … 100 (experimental); with `fraction`, one of them. */
  readonly percent?: number
  readonly fraction?: Fraction
}

export interface LocalObjectReference {
  readonly group: string
  readonly kind: string
  readonly name: string
}

export type HTTPRouteFilterType =
  | 'RequestHeaderModifier'
  | 'ResponseHeaderModifier'
  | 'RequestMirror'
  | 'RequestRedirect'
  | 'URLRewrite'
  | 'ExtensionRef'
  | 'CORS'

export interface HTTPRouteFilter {
  readonly type: HTTPRouteFilterType
  readonly requestHeaderModifier?: HTTPHeaderFilter
  readonly responseHeaderModifier?: HTTPHeaderFilter
  readonly requestMirror?: HTTPRequestMirrorFilter
  readonly requestRedirect?: HTTPRequestRedirectFilter
  readonly urlRewrite?: HTTPURLRewriteFilter
  /** Not supported by Ferry (refused by name). */
  readonly extensionRef?: LocalObjectReference
  /** Not supported by Ferry (refused by name). */
  readonly cors?: Record<string, unknown>
}

export type PathMatchTypeName = 'Exact' | 'PathPrefix' | 'RegularExpression'
export type HeaderMatchTypeName = 'Exact' | 'RegularExpression'

export interface HTTPPathMatch {
  /** Default PathPrefix. */
  readonly type?: PathMatchTypeName
  /** Default "/". */
  readonly value?: string
}

export interface HTTPHeaderMatch {
  /** Default Exact. */
  readonly type?: HeaderMatchTypeName
  readonly name: string
  readonly value: string
}

export interface HTTPQueryParamMatch {
  /** Default Exact. */
  readonly type?: HeaderMatchTypeName
  readonly name: string
  readonly value: string
}

export type HTTPMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'CONNECT' | 'OPTIONS' | 'TRACE' | 'PATCH'

export interface HTTPRouteMatch {
  /** Default { type: PathPrefix, value: "/" }. */
  readonly path?: HTTPPathMatch
  readonly headers?: readonly HTTPHeaderMatch[]
  readonly queryParams?: readonly HTTPQueryParamMatch[]
  readonly method?: HTTPMethod
}

export interface HTTPBackendRef extends BackendObjectReference {
  /** Default 1. */
  readonly weight?: number
  readonly filters?: readonly HTTPRouteFilter[]
}

export interface HTTPRouteTimeouts {
  /** Duration: the whole request, retries included; "0s": none. */
  readonly request?: string
  /** Duration: each attempt. */
  readonly backendRequest?: string
}

/** Experimental (GEP-1731). */
export interface HTTPRouteRetry {
  /** HTTP statuses (400 … 599) that are retried. */
  readonly codes?: readonly number[]
  /** Retries after the first attempt. */
  readonly attempts?: number
  /** Duration: the base of the backoff. */
  readonly backoff?: string
}

export interface SessionPersistence {
  readonly sessionName?: string
  readonly absoluteTimeout?: string
  readonly idleTimeout?: string
  readonly type?: 'Cookie' | 'Header'
  readonly cookieConfig?: { readonly lifetimeType?: 'Permanent' | 'Session' }
}

export interface HTTPRouteRule {
  readonly name?: string
  /** Default: one match of PathPrefix "/". */
  readonly matches?: readonly HTTPRouteMatch[]
  readonly filters?: readonly HTTPRouteFilter[]
  readonly backendRefs?: readonly HTTPBackendRef[]
  readonly timeouts?: HTTPRouteTimeouts
  readonly retry?: HTTPRouteRetry
  /** Not supported by Ferry (refused by name). */
  readonly sessionPersistence?: SessionPersistence
}

export interface HTTPRouteSpec {
  readonly parentRefs?: readonly ParentReference[]
  readonly hostnames?: readonly string[]
  /** Default: one rule matching every request (with no backends: 500). */
  readonly rules?: readonly HTTPRouteRule[]
}

export interface GRPCMethodMatch {
  /** Default Exact. */
  readonly type?: 'Exact' | 'RegularExpression'
  readonly service?: string
  readonly method?: string
}

export interface GRPCHeaderMatch {
  readonly type?: HeaderMatchTypeName
  readonly name: string
  readonly value: string
}

export interface GRPCRouteMatch {
  readonly method?: GRPCMethodMatch
  readonly headers?: readonly GRPCHeaderMatch[]
}

export type GRPCRouteFilterType = 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestMirror' | 'ExtensionRef'

export interface GRPCRouteFilter {
  readonly type: GRPCRouteFilterType
  readonly requestHeaderModifier?: HTTPHeaderFilter
  readonly responseHeaderModifier?: HTTPHeaderFilter
  readonly requestMirror?: HTTPRequestMirrorFilter
  readonly extensionRef?: LocalObjectReference
}

export interface GRPCBackendRef extends BackendObjectReference {
  readonly weight?: number
  readonly filters?: readonly GRPCRouteFilter[]
}

export interface GRPCRouteRule {
  readonly name?: string
  readonly matches?: readonly GRPCRouteMatch[]
  readonly filters?: readonly GRPCRouteFilter[]
  readonly backendRefs?: readonly GRPCBackendRef[]
  readonly sessionPersistence?: SessionPersistence
}

export interface GRPCRouteSpec {
  readonly parentRefs?: readonly ParentReference[]
  readonly hostnames?: readonly string[]
  readonly rules?: readonly GRPCRouteRule[]
}

// ---- Istio (networking.istio.io/v1) --------------------------------------------------

/** Istio's StringMatch: exactly one of exact, prefix, regex (RE2, full match). */
export interface IstioStringMatch {
  readonly exact?: string
  readonly prefix?: string
  readonly regex?: string
}

export interface PortSelector {
  readonly number?: number
}

/** A Service by host (short name, name.namespace, FQDN), optional subset and port. */
export interface Destination {
  readonly host: string
  readonly subset?: string
  readonly port?: PortSelector
}

export interface Percent {
  /** 0 … 100. */
  readonly value?: number
}

export interface HeaderOperations {
  readonly set?: Readonly<Record<string, string>>
  readonly add?: Readonly<Record<string, string>>
  readonly remove?: readonly string[]
}

export interface Headers {
  readonly request?: HeaderOperations
  readonly response?: HeaderOperations
}

export interface HTTPMatchRequest {
  readonly name?: string
  readonly uri?: IstioStringMatch
  readonly scheme?: IstioStringMatch
  readonly method?: IstioStringMatch
  readonly authority?: IstioStringMatch
  /** Names lower case; `{}` (no field) matches presence. */
  readonly headers?: Readonly<Record<string, IstioStringMatch>>
  readonly port?: number
  readonly sourceLabels?: Readonly<Record<string, string>>
  /** Not supported by Ferry (no gateways in a mesh route). */
  readonly gateways?: readonly string[]
  readonly queryParams?: Readonly<Record<string, IstioStringMatch>>
  readonly ignoreUriCase?: boolean
  readonly withoutHeaders?: Readonly<Record<string, IstioStringMatch>>
  readonly sourceNamespace?: string
  readonly statPrefix?: string
}

export interface HTTPRouteDestination {
  readonly destination: Destination
  /** Default: 100 with one destination; weights of several add up to 100. */
  readonly weight?: number
  readonly headers?: Headers
}

export interface HTTPRedirect {
  readonly uri?: string
  readonly authority?: string
  readonly port?: number
  readonly derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT'
  readonly scheme?: string
  /** Default 301. */
  readonly redirectCode?: number
}

export interface RegexRewrite {
  readonly match?: string
  readonly rewrite?: string
}

export interface HTTPRewrite {
  readonly uri?: string
  readonly authority?: string
  /** Not supported by Ferry (refused by name). */
  readonly uriRegexRewrite?: RegexRewrite
}

export interface HTTPRetry {
  readonly attempts?: number
  /** Duration. */
  readonly perTryTimeout?: string
  /** Comma-separated: 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, and HTTP status numbers. */
  readonly retryOn?: string
  readonly retryRemoteLocalities?: boolean
  readonly retryIgnorePreviousHosts?: boolean
  /** Duration: the backoff's base interval. */
  readonly backoff?: string
}

export interface HTTPFaultInjectionDelay {
  /** Duration. */
  readonly fixedDelay?: string
  readonly percentage?: Percent
  /** Deprecated integer percentage. */
  readonly percent?: number
}

export interface HTTPFaultInjectionAbort {
  readonly httpStatus?: number
  /** A gRPC status by name ("UNAVAILABLE") or number. */
  readonly grpcStatus?: string
  readonly http2Error?: string
  readonly percentage?: Percent
}

export interface HTTPFaultInjection {
  readonly delay?: HTTPFaultInjectionDelay
  readonly abort?: HTTPFaultInjectionAbort
}

export interface HTTPMirrorPolicy {
  readonly destination: Destination
  readonly percentage?: Percent
}

export interface HTTPDirectResponse {
  readonly status: number
  readonly body?: { readonly string?: string, readonly bytes?: string }
}

/** Istio's HTTPRoute (one entry of a VirtualService's `http`). */
export interface IstioHTTPRoute {
  readonly name?: string
  readonly match?: readonly HTTPMatchRequest[]
  readonly route?: readonly HTTPRouteDestination[]
  readonly redirect?: HTTPRedirect
  /** Not supported by Ferry (refused by name). */
  readonly directResponse?: HTTPDirectResponse
  /** Not supported by Ferry (refused by name). */
  readonly delegate?: { readonly name?: string, readonly namespace?: string }
  readonly rewrite?: HTTPRewrite
  /** Duration: the whole request. */
  readonly timeout?: string
  readonly retries?: HTTPRetry
  readonly fault?: HTTPFaultInjection
  readonly mirror?: Destination
  readonly mirrors?: readonly HTTPMirrorPolicy[]
  /** The share of requests `mirror` copies (default 100). */
  readonly mirrorPercentage?: Percent
  /** Deprecated integer form of mirrorPercentage. */
  readonly mirrorPercent?: number
  /** Not supported by Ferry (refused by name). */
  readonly corsPolicy?: Record<string, unknown>
  readonly headers?: Headers
}

export interface VirtualServiceSpec {
  readonly hosts?: readonly string[]
  /** Only "mesh" (or absent) applies in Ferry. */
  readonly gateways?: readonly string[]
  readonly http?: readonly IstioHTTPRoute[]
  /** Not supported by Ferry (refused by name). */
  readonly tls?: readonly Record<string, unknown>[]
  /** Not supported by Ferry (refused by name). */
  readonly tcp?: readonly Record<string, unknown>[]
  readonly exportTo?: readonly string[]
}

export type SimpleLB = 'UNSPECIFIED' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'LEAST_CONN'

export interface HTTPCookie {
  readonly name: string
  readonly path?: string
  /** Duration. */
  readonly ttl?: string
}

export interface ConsistentHashLB {
  readonly httpHeaderName?: string
  readonly httpCookie?: HTTPCookie
  readonly useSourceIp?: boolean
  readonly httpQueryParameterName?: string
  readonly ringHash?: { readonly minimumRingSize?: number }
  readonly maglev?: { readonly tableSize?: number }
  readonly minimumRingSize?: number
}

export interface LoadBalancerSettings {
  readonly simple?: SimpleLB
  readonly consistentHash?: ConsistentHashLB
  /** Not supported by Ferry (refused by name). */
  readonly localityLbSetting?: Record<string, unknown>
  readonly warmupDurationSecs?: string
}

export interface TCPSettings {
  readonly maxConnections?: number
  readonly connectTimeout?: string
  readonly tcpKeepalive?: { readonly probes?: number, readonly time?: string, readonly interval?: string }
  readonly maxConnectionDuration?: string
  readonly idleTimeout?: string
}

export interface HTTPSettings {
  readonly http1MaxPendingRequests?: number
  readonly http2MaxRequests?: number
  readonly maxRequestsPerConnection?: number
  readonly maxRetries?: number
  readonly idleTimeout?: string
  readonly h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE'
  readonly useClientProtocol?: boolean
  readonly maxConcurrentStreams?: number
}

export interface ConnectionPoolSettings {
  readonly tcp?: TCPSettings
  readonly http?: HTTPSettings
}

export interface OutlierDetectionSettings {
  readonly splitExternalLocalOriginErrors?: boolean
  readonly consecutiveLocalOriginFailures?: number
  readonly consecutiveGatewayErrors?: number
  readonly consecutive5xxErrors?: number
  /** Duration, default 10s. */
  readonly interval?: string
  /** Duration, default 30s. */
  readonly baseEjectionTime?: string
  /** Default 10. */
  readonly maxEjectionPercent?: number
  /** Default 0. */
  readonly minHealthPercent?: number
}

export interface PortTrafficPolicy {
  readonly port?: PortSelector
  readonly loadBalancer?: LoadBalancerSettings
  readonly connectionPool?: ConnectionPoolSettings
  readonly outlierDetection?: OutlierDetectionSettings
  /** Not supported by Ferry (mesh mTLS is Ferry's own; refused by name). */
  readonly tls?: Record<string, unknown>
}

export interface DestinationRuleTrafficPolicy {
  readonly loadBalancer?: LoadBalancerSettings
  readonly connectionPool?: ConnectionPoolSettings
  readonly outlierDetection?: OutlierDetectionSettings
  /** Not supported by Ferry (refused by name). */
  readonly tls?: Record<string, unknown>
  readonly portLevelSettings?: readonly PortTrafficPolicy[]
  /** Not supported by Ferry (refused by name). */
  readonly tunnel?: Record<string, unknown>
  /** Not supported by Ferry (refused by name). */
  readonly proxyProtocol?: Record<string, unknown>
}

export interface Subset {
  readonly name: string
  readonly labels?: Readonly<Record<string, string>>
  readonly trafficPolicy?: DestinationRuleTrafficPolicy
}

export interface DestinationRuleSpec {
  readonly host: string
  readonly trafficPolicy?: DestinationRuleTrafficPolicy
  readonly subsets?: readonly Subset[]
  readonly exportTo?: readonly string[]
  /** Not supported by Ferry (refused by name). */
  readonly workloadSelector?: { readonly matchLabels?: Readonly<Record<string, string>> }
}
