import type { DestinationRuleSpec, GRPCRouteSpec, HTTPRouteSpec, VirtualServiceSpec } from '../routing/api-types'

// The configuration resources Ferry reads, as the rest of the program sees them: typed,
// validated (schema.ts) and deeply frozen. They are written as Kubernetes objects, the
// same documents whether they come from files or, later, from the API server as CRDs.
//
// Istio's documents are accepted exactly as Istio users write them (its security API
// group, v1 and v1beta1), alongside Ferry's own group: the spec is the same. The
// traffic-management kinds are Gateway API's routes and Istio's networking kinds as
// their users write them (their `spec` types: src/routing/api-types.ts), and Ferry's
// RateLimit.

export const ISTIO_SECURITY_VERSIONS = Object.freeze(['security.istio.io/v1', 'security.istio.io/v1beta1'])
export const FERRY_SECURITY_VERSIONS = Object.freeze(['security.ferry.dev/v1alpha1'])
export const SECURITY_API_VERSIONS: readonly string[] = Object.freeze([...ISTIO_SECURITY_VERSIONS, ...FERRY_SECURITY_VERSIONS])
export const GATEWAY_API_VERSIONS: readonly string[] = Object.freeze(['gateway.networking.k8s.io/v1'])
/** HTTPRoute is also served as v1beta1 (the same spec). */
export const GATEWAY_HTTP_ROUTE_VERSIONS: readonly string[] = Object.freeze(['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'])
export const ISTIO_NETWORKING_VERSIONS: readonly string[] = Object.freeze(['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'])

export const RESOURCE_KINDS = Object.freeze(['AuthorizationPolicy', 'PeerAuthentication', 'HTTPRoute', 'GRPCRoute', 'VirtualService', 'DestinationRule', 'RateLimit'] as const)
export type ResourceKind = typeof RESOURCE_KINDS[number]
/** The kinds that route requests: a field Ferry cannot carry out refuses the object (no narrower form exists). */
export const ROUTING_KINDS: ReadonlySet<ResourceKind> = new Set(['HTTPRoute', 'GRPCRoute', 'VirtualService', 'DestinationRule'])
/** Ferry's own kinds (its CRDs, src/install/crds.ts). */
export const FERRY_KINDS = Object.freeze(['AuthorizationPolicy', 'PeerAuthentication', 'RateLimit'] as const)
export type FerryKind = typeof FERRY_KINDS[number]

/** The apiVersions each kind is read in. */
export const KIND_VERSIONS: Readonly<Record<ResourceKind, readonly string[]>> = Object.freeze({
  AuthorizationPolicy: SECURITY_API_VERSIONS,
  PeerAuthentication: SECURITY_API_VERSIONS,
  HTTPRoute: GATEWAY_HTTP_ROUTE_VERSIONS,
  GRPCRoute: GATEWAY_API_VERSIONS,
  VirtualService: ISTIO_NETWORKING_VERSIONS,
  DestinationRule: ISTIO_NETWORKING_VERSIONS,
  RateLimit: FERRY_SECURITY_VERSIONS
})

/** Annotations that put an AuthorizationPolicy in dry-run: evaluated and logged, not enforced. */
export const DRY_RUN_ANNOTATIONS = Object.freeze(['istio.io/dry-run', 'ferry.dev/dry-run'])

export interface SourceLocation {
  readonly file: string
  readonly line: number
}

/**
 * Something in a resource Ferry cannot enforce as written, and what it does instead
 * (src/resources/degrade.ts): always a form that allows no more than the document.
 */
export interface Degradation {
  /** `spec.rules[0].to[0].operation.methods` */
  readonly field: string
  readonly path: ReadonlyArray<string | number>
  /** Why Ferry cannot enforce it. */
  readonly reason: string
  /** What Ferry does instead. */
  readonly effect: string
  /**
   * - ignored: no effect on access (server-written metadata, AUDIT's whole policy)
   * - condition-dropped: a DENY rule applied without the condition (it denies more)
   * - rule-matches-nothing: an ALLOW rule that can never match (it allows nothing)
   * - action: CUSTOM enforced as DENY
   * - scope: targetRefs replaced by the whole namespace
   * - mode: DISABLE read as UNSET
   */
  readonly kind: 'ignored' | 'condition-dropped' | 'rule-matches-nothing' | 'action' | 'scope' | 'mode'
}

export interface ObjectMeta {
  readonly name: string
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  /** The routing kinds only, when written (the API server's): Gateway API orders routes of equal precedence by age. */
  readonly creationTimestamp?: string
}

interface ResourceBase<K extends ResourceKind, S> {
  readonly kind: K
  readonly apiVersion: string
  readonly metadata: ObjectMeta
  readonly spec: S
  /** "namespace/name": how logs, metrics and decisions name it. */
  readonly ref: string
  /** Where the document starts. */
  readonly origin: SourceLocation
  /** What Ferry does not enforce as written (empty: enforced as written). */
  readonly degraded: readonly Degradation[]
}

export interface WorkloadSelector {
  readonly matchLabels: Readonly<Record<string, string>>
}

// ---- AuthorizationPolicy -------------------------------------------------------------

export type AuthorizationAction = 'ALLOW' | 'DENY'

/** Each list, when present, has at least one entry (the schema rejects empty lists). */
export interface PolicySource {
  readonly principals?: readonly string[]
  readonly notPrincipals?: readonly string[]
  readonly namespaces?: readonly string[]
  readonly notNamespaces?: readonly string[]
  readonly ipBlocks?: readonly string[]
  readonly notIpBlocks?: readonly string[]
}

export interface PolicyOperation {
  /** Destination ports (Istio writes them as strings; here they are numbers). */
  readonly ports?: readonly number[]
  readonly notPorts?: readonly number[]
  /** L7 (HTTP request) fields: matched per request where L7 is engaged (src/policy/request-match.ts). */
  readonly methods?: readonly string[]
  readonly notMethods?: readonly string[]
  readonly paths?: readonly string[]
  readonly notPaths?: readonly string[]
  readonly hosts?: readonly string[]
  readonly notHosts?: readonly string[]
}

/** One `when` condition; at least one of values / notValues is set (the schema checks the key). */
export interface PolicyCondition {
  readonly key: string
  readonly values?: readonly string[]
  readonly notValues?: readonly string[]
}

export interface PolicyRule {
  readonly from?: ReadonlyArray<{ readonly source: PolicySource }>
  readonly to?: ReadonlyArray<{ readonly operation: PolicyOperation }>
  /** Every condition must hold (the keys Ferry evaluates; others were degraded away). */
  readonly when?: readonly PolicyCondition[]
  /** ALLOW rules: conditions Ferry cannot check were written here, so the rule never matches. */
  readonly unenforceable?: readonly string[]
  /** DENY rules: conditions Ferry cannot check, left out (the rule matches more). */
  readonly dropped?: readonly string[]
}

export interface AuthorizationPolicySpec {
  /** Absent: the policy applies to every workload of its namespace (of the mesh, in the root namespace). */
  readonly selector?: WorkloadSelector
  /** ALLOW when not written, as in Istio. */
  readonly action: AuthorizationAction
  /** Absent or empty: the policy matches nothing (an ALLOW policy then allows nothing). */
  readonly rules?: readonly PolicyRule[]
}

export interface AuthorizationPolicy extends ResourceBase<'AuthorizationPolicy', AuthorizationPolicySpec> {
  /** istio.io/dry-run or ferry.dev/dry-run is "true". */
  readonly dryRun: boolean
}

// ---- PeerAuthentication --------------------------------------------------------------

export type MtlsMode = 'STRICT' | 'PERMISSIVE'
/** UNSET inherits from the parent level (workload → namespace → mesh → Ferry's default). */
export type DeclaredMtlsMode = MtlsMode | 'UNSET'

export interface PeerAuthenticationSpec {
  readonly selector?: WorkloadSelector
  readonly mtls?: { readonly mode: DeclaredMtlsMode }
  /** Port → mode; needs a selector. Keys are port numbers as written ("8080"). */
  readonly portLevelMtls?: Readonly<Record<string, { readonly mode: DeclaredMtlsMode }>>
}

export type PeerAuthentication = ResourceBase<'PeerAuthentication', PeerAuthenticationSpec>

// ---- Traffic management ----------------------------------------------------------------
// The spec as written (validated by the kind's schema; defaults are the compilers' to
// apply, src/routing/), deeply frozen.

export type HTTPRoute = ResourceBase<'HTTPRoute', HTTPRouteSpec>
export type GRPCRoute = ResourceBase<'GRPCRoute', GRPCRouteSpec>
export type VirtualService = ResourceBase<'VirtualService', VirtualServiceSpec>
export type DestinationRule = ResourceBase<'DestinationRule', DestinationRuleSpec>

export type RateLimitPeriod = 'second' | 'minute' | 'hour'

/** Ferry's RateLimit: one token bucket per destination pod, at the destination node (docs/traffic.md). */
export interface RateLimitSpec {
  /** The pods limited, by labels; with targetRefs absent too: every pod of the namespace. */
  readonly selector?: WorkloadSelector
  /** Services of the RateLimit's namespace: the pods they select (at most one of selector / targetRefs). */
  readonly targetRefs?: ReadonlyArray<{ readonly group?: '' | 'core', readonly kind: 'Service', readonly name: string }>
  readonly limit: {
    /** Tokens added per `per` (the sustained rate). */
    readonly requests: number
    readonly per: RateLimitPeriod
    /** The bucket's size (requests allowed at once); absent: `requests`. */
    readonly burst?: number
  }
}

export type RateLimit = ResourceBase<'RateLimit', RateLimitSpec>

export const RATE_LIMIT_PERIOD_MS: Readonly<Record<RateLimitPeriod, number>> = Object.freeze({ second: 1000, minute: 60_000, hour: 3_600_000 })

export type RouteResource = HTTPRoute | GRPCRoute | VirtualService | DestinationRule

export type Resource = AuthorizationPolicy | PeerAuthentication | RouteResource | RateLimit

/** `AuthorizationPolicy/prod/deny-dev`: what makes two documents the same object. */
export function resourceKey (kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`
}

/** `AuthorizationPolicy prod/deny-dev`: how issues name a resource. */
export function describeResource (r: { kind: string, metadata: { namespace: string, name: string } }): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`
}

/** True when a selector selects by at least one label (an empty one selects the whole namespace, as in Istio). */
export function hasSelector (selector: WorkloadSelector | undefined): selector is WorkloadSelector {
  return selector !== undefined && Object.keys(selector.matchLabels).length > 0
}

/** Whether `labels` carry every label of `selector`. */
export function selects (selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false
  return true
}
