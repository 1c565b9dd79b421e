import type { ConnectionPoolSettings, DestinationRuleSpec, DestinationRuleTrafficPolicy, LoadBalancerSettings, OutlierDetectionSettings } from './api-types'
import { byAge, type RouteObject, type ServicesView, serviceRef } from './cluster-view'
import { durationMs, timeoutMs } from './duration'
import type { ConnectionPoolLimits, LoadBalancerPolicy, OutlierDetection, TrafficPolicy } from './model'

// DestinationRules → per Service: its subsets (labels) and the TrafficPolicy of each
// (service port, subset). Istio's layering, field by field (loadBalancer,
// connectionPool, outlierDetection each taken whole from the most specific layer that
// sets it): subset's portLevelSettings > subset's policy > the rule's portLevelSettings >
// the rule's policy > Ferry's defaults (P2C over peak-EWMA, no pool limits, no outlier
// detection). Of several DestinationRules for one Service, the oldest applies (the others
// are reported).

export const DEFAULT_POLICY: TrafficPolicy = Object.freeze({ source: null, loadBalancer: Object.freeze({ type: 'P2C_PEAK_EWMA' as const }), connectionPool: null, outlierDetection: null })

export interface ServiceRule {
  readonly ref: string
  readonly spec: DestinationRuleSpec
  readonly subsets: ReadonlyMap<string, Readonly<Record<string, string>>>
}

export interface DestinationRules {
  /** By Service "ns/name". */
  readonly byService: ReadonlyMap<string, ServiceRule>
  /** "DestinationRule ns/name" → why it does not apply (no such Service, another rule is older). */
  readonly problems: ReadonlyMap<string, readonly string[]>
}

export function compileDestinationRules (rules: ReadonlyArray<RouteObject<DestinationRuleSpec>>, services: ServicesView): DestinationRules {
  const byService = new Map<string, ServiceRule>()
  const problems = new Map<string, string[]>()
  for (const dr of [...rules].sort(byAge)) {
    const ref = `${dr.metadata.namespace}/${dr.metadata.name}`
    const service = services.byHost(dr.spec.host, dr.metadata.namespace)
    if (service === undefined) { problems.set(`DestinationRule ${ref}`, [`host ${dr.spec.host} names no Service`]); continue }
    const key = serviceRef(service)
    const older = byService.get(key)
    if (older !== undefined) { problems.set(`DestinationRule ${ref}`, [`DestinationRule ${older.ref} for ${key} is older and applies`]); continue }
    const subsets = new Map((dr.spec.subsets ?? []).map((s) => [s.name, Object.freeze({ ...(s.labels ?? {}) })]))
    byService.set(key, Object.freeze({ ref, spec: dr.spec, subsets }))
  }
  return { byService, problems }
}

/** The TrafficPolicy of a Service port (and subset) under its DestinationRule, if any. */
export function trafficPolicyOf (rule: ServiceRule | undefined, port: number, subset: string | null): TrafficPolicy {
  if (rule === undefined) return DEFAULT_POLICY
  const layers: DestinationRuleTrafficPolicy[] = []
  const sub = subset === null ? undefined : rule.spec.subsets?.find((s) => s.name === subset)
  const portLevel = (p: DestinationRuleTrafficPolicy | undefined): DestinationRuleTrafficPolicy | undefined => p?.portLevelSettings?.find((s) => s.port?.number === port)
  for (const l of [portLevel(sub?.trafficPolicy), sub?.trafficPolicy, portLevel(rule.spec.trafficPolicy), rule.spec.trafficPolicy]) if (l !== undefined) layers.push(l)
  const pick = <K extends 'loadBalancer' | 'connectionPool' | 'outlierDetection'>(k: K): DestinationRuleTrafficPolicy[K] => layers.find((l) => l[k] !== undefined)?.[k]
  const lb = pick('loadBalancer')
  const pool = pick('connectionPool')
  const od = pick('outlierDetection')
  return Object.freeze({
    source: `DestinationRule ${rule.ref}${sub === undefined ? '' : ` subset ${sub.name}`}`,
    loadBalancer: lb === undefined ? DEFAULT_POLICY.loadBalancer : loadBalancerOf(lb),
    connectionPool: pool === undefined ? null : connectionPoolOf(pool),
    outlierDetection: od === undefined ? null : outlierOf(od)
  })
}

function loadBalancerOf (lb: LoadBalancerSettings): LoadBalancerPolicy {
  const h = lb.consistentHash
  if (h !== undefined) {
    if (h.httpHeaderName !== undefined) return Object.freeze({ type: 'CONSISTENT_HASH', key: Object.freeze({ header: h.httpHeaderName.toLowerCase() }) })
    if (h.httpCookie !== undefined) return Object.freeze({ type: 'CONSISTENT_HASH', key: Object.freeze({ cookie: Object.freeze({ name: h.httpCookie.name, ttlMs: timeoutMs(h.httpCookie.ttl), path: h.httpCookie.path ?? null }) }) })
    if (h.httpQueryParameterName !== undefined) return Object.freeze({ type: 'CONSISTENT_HASH', key: Object.freeze({ queryParameter: h.httpQueryParameterName }) })
    if (h.useSourceIp === true) return Object.freeze({ type: 'CONSISTENT_HASH', key: Object.freeze({ sourceIp: true as const }) })
  }
  switch (lb.simple) {
    case 'ROUND_ROBIN': return Object.freeze({ type: 'ROUND_ROBIN' })
    case 'LEAST_REQUEST': case 'LEAST_CONN': return Object.freeze({ type: 'LEAST_REQUEST' })
    case 'RANDOM': return Object.freeze({ type: 'RANDOM' })
    default: return DEFAULT_POLICY.loadBalancer
  }
}

function connectionPoolOf (p: ConnectionPoolSettings): ConnectionPoolLimits {
  return Object.freeze({
    maxConnections: p.tcp?.maxConnections ?? null,
    maxPendingRequests: p.http?.http1MaxPendingRequests ?? null,
    maxRequests: p.http?.http2MaxRequests ?? null,
    // 0: no limit (Istio's default).
    maxRequestsPerConnection: p.http?.maxRequestsPerConnection === undefined || p.http.maxRequestsPerConnection <= 0 ? null : p.http.maxRequestsPerConnection,
    connectTimeoutMs: timeoutMs(p.tcp?.connectTimeout),
    idleTimeoutMs: timeoutMs(p.http?.idleTimeout ?? p.tcp?.idleTimeout)
  })
}

/** Istio's defaults: 5 consecutive 5xx, interval 10 s, base ejection 30 s, at most 10 % ejected. */
function outlierOf (o: OutlierDetectionSettings): OutlierDetection {
  const ms = (text: string | undefined, dflt: number): number => { const v = text === undefined ? NaN : durationMs(text); return Number.isNaN(v) ? dflt : v }
  return Object.freeze({
    consecutive5xxErrors: o.consecutive5xxErrors ?? 5,
    consecutiveGatewayErrors: o.consecutiveGatewayErrors ?? null,
    consecutiveLocalOriginFailures: o.consecutiveLocalOriginFailures ?? null,
    intervalMs: ms(o.interval, 10_000),
    baseEjectionTimeMs: ms(o.baseEjectionTime, 30_000),
    maxEjectionPercent: o.maxEjectionPercent ?? 10,
    minHealthPercent: o.minHealthPercent ?? 0
  })
}
