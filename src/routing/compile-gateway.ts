import type { Service } from '../discovery/model'
import type {
  BackendObjectReference, GRPCRouteMatch, GRPCRouteSpec, HTTPHeaderFilter, HTTPPathModifier, HTTPRouteFilter, HTTPRouteMatch,
  HTTPRouteSpec, ParentReference
} from './api-types'
import { byAge, type RouteObject, type ServicesView, serviceRef } from './cluster-view'
import { timeoutMs } from './duration'
import type {
  BackendRef, HeaderEdits, HeaderMatch, Mirror, PathModifier, QueryMatch, Redirect, RequestMatch, RetryPolicy, Rewrite, RouteKind,
  RouteRule, ServiceRoutes, WeightedBackend
} from './model'

// Gateway API routes attached to Services (GAMMA) → ServiceRoutes per Service port and
// calling namespace:
//   producer routes (in the Service's namespace) apply to every caller;
//   consumer routes (in another namespace) apply to callers in the route's namespace
//   only, and come before the producer routes for them.
// Within each group, every match of every attached route is ordered by the
// specification's precedence (precedence.ts). A parentRef without port (or sectionName)
// attaches to every port of the Service. Hostnames do not apply in the mesh (the Service
// is the parent). References that do not resolve (a backend Service or port that does
// not exist) are left out and reported in `problems`; a rule left without backends
// answers 500, as the specification says.

export type GatewayRoute =
  | { readonly kind: 'HTTPRoute', readonly object: RouteObject<HTTPRouteSpec> }
  | { readonly kind: 'GRPCRoute', readonly object: RouteObject<GRPCRouteSpec> }

/** The routes of one Service port: its producer routes' entries, and per consumer namespace its consumer routes' entries followed by the producer's. */
export interface PortRoutes {
  readonly producer: ServiceRoutes | null
  readonly consumers: ReadonlyMap<string, ServiceRoutes>
}

export interface GatewayRouting {
  /** By "namespace/name:port" of the Service port. */
  readonly ports: ReadonlyMap<string, PortRoutes>
  /** "Kind ns/name": what did not resolve (ResolvedRefs false), for status and `ferry route check`. */
  readonly problems: ReadonlyMap<string, readonly string[]>
  /** The Services ("ns/name") some route is attached to. */
  readonly services: ReadonlySet<string>
}

interface Entry {
  readonly rule: RouteRule
  readonly match: RequestMatch
  readonly object: RouteObject<unknown>
  readonly ruleIndex: number
  readonly matchIndex: number
  readonly grpc: boolean
}

export function portKey (service: string, port: number): string { return `${service}:${port}` }

export function compileGateway (routes: readonly GatewayRoute[], services: ServicesView): GatewayRouting {
  const problems = new Map<string, string[]>()
  const problem = (ref: string, text: string): void => {
    const list = problems.get(ref)
    if (list === undefined) problems.set(ref, [text]); else if (!list.includes(text)) list.push(text)
  }
  // Service port → (producer entries, consumer entries by namespace)
  const attached = new Map<string, { producer: Entry[], consumers: Map<string, Entry[]>, objects: Map<string, string[]> }>()
  const attachedServices = new Set<string>()
  for (const r of routes) {
    const o = r.object
    const ref = `${r.kind} ${o.metadata.namespace}/${o.metadata.name}`
    for (const parent of o.spec.parentRefs ?? []) {
      if (!isService(parent)) continue
      const service = services.get(parent.namespace ?? o.metadata.namespace, parent.name)
      if (service === undefined) { problem(ref, `parentRef Service ${parent.namespace ?? o.metadata.namespace}/${parent.name} does not exist`); continue }
      const ports = service.ports.filter((p) => p.protocol === 'TCP' && (parent.port === undefined || p.port === parent.port) && (parent.sectionName === undefined || p.name === parent.sectionName))
      if (ports.length === 0) { problem(ref, `parentRef Service ${serviceRef(service)} has no port ${parent.port ?? parent.sectionName ?? ''}`); continue }
      attachedServices.add(serviceRef(service))
      const consumer = o.metadata.namespace !== service.namespace
      for (const port of ports) {
        const key = portKey(serviceRef(service), port.port)
        let slot = attached.get(key)
        if (slot === undefined) { slot = { producer: [], consumers: new Map(), objects: new Map() }; attached.set(key, slot) }
        const group = consumer ? o.metadata.namespace : ''
        const seen = slot.objects.get(group) ?? []
        if (seen.includes(ref)) continue
        seen.push(ref)
        slot.objects.set(group, seen)
        const entries = entriesOf(r, service, port.port, services, (t) => { problem(ref, t) })
        if (!consumer) slot.producer.push(...entries)
        else {
          const list = slot.consumers.get(group)
          if (list === undefined) slot.consumers.set(group, [...entries]); else list.push(...entries)
        }
      }
    }
  }
  const ports = new Map<string, PortRoutes>()
  for (const [key, slot] of attached) {
    const producerSorted = sortEntries(slot.producer)
    const producer = producerSorted.length === 0 && slot.objects.get('') === undefined ? null : serviceRoutes(producerSorted, slot.objects.get('') ?? [])
    const consumers = new Map<string, ServiceRoutes>()
    for (const [ns, entries] of slot.consumers) {
      consumers.set(ns, serviceRoutes([...sortEntries(entries), ...producerSorted], [...(slot.objects.get(ns) ?? []), ...(slot.objects.get('') ?? [])]))
    }
    ports.set(key, Object.freeze({ producer, consumers }))
  }
  return { ports, problems: new Map([...problems].map(([k, v]) => [k, Object.freeze(v)])), services: attachedServices }
}

function isService (p: ParentReference): boolean {
  return (p.group === undefined || p.group === '' || p.group === 'core') && p.kind === 'Service'
}

function serviceRoutes (entries: readonly Entry[], objects: readonly string[]): ServiceRoutes {
  const kind: RouteKind = entries.some((e) => !e.grpc) || entries.length === 0 ? 'HTTPRoute' : 'GRPCRoute'
  return Object.freeze({
    kind,
    objects: Object.freeze([...objects]),
    entries: Object.freeze(entries.map((e) => Object.freeze({ rule: e.rule, match: e.match })))
  })
}

// ---- precedence ---------------------------------------------------------------------

/**
 * Gateway API's precedence. HTTPRoute: Exact path, then PathPrefix by the prefix's length,
 * then RegularExpression; then a method match; then more header matches; then more query
 * parameter matches. GRPCRoute: more characters of service, then of method; then more
 * header matches. HTTPRoute matches come before GRPCRoute ones on a port with both. Ties:
 * the oldest route, then namespace/name, then rule and match order.
 */
export function sortEntries (entries: readonly Entry[]): Entry[] {
  return [...entries].sort(compareEntries)
}

function compareEntries (a: Entry, b: Entry): number {
  if (a.grpc !== b.grpc) return a.grpc ? 1 : -1
  const d = a.grpc ? compareGrpc(a.match, b.match) : compareHttp(a.match, b.match)
  if (d !== 0) return d
  return byAge(a.object, b.object) || a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex
}

const PATH_RANK = { Exact: 3, PathPrefix: 2, Prefix: 2, RegularExpression: 1 } as const

function compareHttp (a: RequestMatch, b: RequestMatch): number {
  const pa = a.path ?? { type: 'PathPrefix' as const, value: '/' }
  const pb = b.path ?? { type: 'PathPrefix' as const, value: '/' }
  if (PATH_RANK[pa.type] !== PATH_RANK[pb.type]) return PATH_RANK[pb.type] - PATH_RANK[pa.type]
  if (pa.type === 'PathPrefix' && pb.type === 'PathPrefix') {
    const la = pa.value.replace(/\/+$/, '').length
    const lb = pb.value.replace(/\/+$/, '').length
    if (la !== lb) return lb - la
  }
  if ((a.method === null) !== (b.method === null)) return a.method === null ? 1 : -1
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length
  return b.query.length - a.query.length
}

function compareGrpc (a: RequestMatch, b: RequestMatch): number {
  const sa = a.grpc?.service?.length ?? 0
  const sb = b.grpc?.service?.length ?? 0
  if (sa !== sb) return sb - sa
  const ma = a.grpc?.method?.length ?? 0
  const mb = b.grpc?.method?.length ?? 0
  if (ma !== mb) return mb - ma
  return b.headers.length - a.headers.length
}

// ---- rules --------------------------------------------------------------------------

const EMPTY_MATCH: RequestMatch = Object.freeze({
  path: null, method: null, headers: Object.freeze([]), query: Object.freeze([]), grpc: null, authority: null, sourceLabels: null, sourceNamespace: null
})

function entriesOf (r: GatewayRoute, parent: Service, parentPort: number, services: ServicesView, problem: (text: string) => void): Entry[] {
  const o = r.object
  const ref = `${o.metadata.namespace}/${o.metadata.name}`
  const out: Entry[] = []
  const rules = o.spec.rules ?? [{}]
  rules.forEach((spec, ruleIndex) => {
    const backendOf = (b: BackendObjectReference): BackendRef | null => resolveBackend(b, o.metadata.namespace, parent, parentPort, services, problem)
    const rule = r.kind === 'HTTPRoute'
      ? httpRule(r.object.spec.rules?.[ruleIndex] ?? {}, ref, ruleIndex, backendOf)
      : grpcRule(r.object.spec.rules?.[ruleIndex] ?? {}, ref, ruleIndex, backendOf)
    const matches = r.kind === 'HTTPRoute'
      ? ((spec as { matches?: readonly HTTPRouteMatch[] }).matches ?? [{}]).map(httpMatch)
      : ((spec as { matches?: readonly GRPCRouteMatch[] }).matches ?? [{}]).map(grpcMatch)
    const frozen = Object.freeze({ ...rule, matches: Object.freeze(matches) })
    matches.forEach((match, matchIndex) => { out.push({ rule: frozen, match, object: o, ruleIndex, matchIndex, grpc: r.kind === 'GRPCRoute' }) })
  })
  return out
}

type BackendOf = (b: BackendObjectReference) => BackendRef | null

function baseRule (kind: RouteKind, ref: string, index: number, name: string | undefined): Pick<RouteRule, 'name' | 'source'> {
  return { name: `${kind} ${ref} rule ${index}${name === undefined ? '' : ` (${name})`}`, source: Object.freeze({ kind, ref, rule: index }) }
}

function httpRule (spec: NonNullable<HTTPRouteSpec['rules']>[number], ref: string, index: number, backendOf: BackendOf): Omit<RouteRule, 'matches'> {
  const f = filtersOf(spec.filters ?? [], backendOf)
  const backendTimeout = timeoutMs(spec.timeouts?.backendRequest)
  return {
    ...baseRule('HTTPRoute', ref, index, spec.name),
    backends: backendsOf(spec.backendRefs ?? [], backendOf),
    ...f,
    timeoutMs: timeoutMs(spec.timeouts?.request),
    backendTimeoutMs: backendTimeout,
    retry: spec.retry === undefined ? null : retryOf(spec.retry.codes ?? [], spec.retry.attempts, spec.retry.backoff),
    fault: null
  }
}

function grpcRule (spec: NonNullable<GRPCRouteSpec['rules']>[number], ref: string, index: number, backendOf: BackendOf): Omit<RouteRule, 'matches'> {
  const f = filtersOf(spec.filters ?? [], backendOf)
  return {
    ...baseRule('GRPCRoute', ref, index, spec.name),
    backends: backendsOf(spec.backendRefs ?? [], backendOf),
    ...f,
    timeoutMs: null,
    backendTimeoutMs: null,
    retry: null,
    fault: null
  }
}

/** GEP-1731's retry: the listed statuses, plus connect failures and resets (what a retry is for in any case); Envoy's backoff (25 ms base, 10 × base cap) when none is given. */
export function retryOf (codes: readonly number[], attempts: number | undefined, backoff: string | undefined): RetryPolicy {
  const base = timeoutMs(backoff) ?? 25
  return Object.freeze({
    attempts: attempts ?? 1,
    perTryTimeoutMs: null,
    on: Object.freeze({ connectFailure: true, reset: true, serverError: false, gatewayError: false, retriable4xx: false, statuses: Object.freeze([...codes]), grpcStatuses: Object.freeze([]) }),
    backoffBaseMs: base,
    backoffMaxMs: 10 * base
  })
}

function backendsOf (refs: ReadonlyArray<BackendObjectReference & { readonly weight?: number, readonly filters?: readonly HTTPRouteFilter[] }>, backendOf: BackendOf): readonly WeightedBackend[] {
  const out: WeightedBackend[] = []
  for (const r of refs) {
    const backend = backendOf(r)
    if (backend === null) continue
    const f = filtersOf(r.filters ?? [], backendOf)
    out.push(Object.freeze({ backend, weight: r.weight ?? 1, requestHeaders: f.requestHeaders, responseHeaders: f.responseHeaders }))
  }
  return Object.freeze(out)
}

interface Filters {
  readonly requestHeaders: HeaderEdits | null
  readonly responseHeaders: HeaderEdits | null
  readonly redirect: Redirect | null
  readonly rewrite: Rewrite | null
  readonly mirrors: readonly Mirror[]
}

function filtersOf (filters: ReadonlyArray<Pick<HTTPRouteFilter, 'type' | 'requestHeaderModifier' | 'responseHeaderModifier' | 'requestMirror' | 'requestRedirect' | 'urlRewrite'>>, backendOf: BackendOf): Filters {
  let requestHeaders: HeaderEdits | null = null
  let responseHeaders: HeaderEdits | null = null
  let redirect: Redirect | null = null
  let rewrite: Rewrite | null = null
  const mirrors: Mirror[] = []
  for (const f of filters) {
    switch (f.type) {
      case 'RequestHeaderModifier': if (f.requestHeaderModifier !== undefined) requestHeaders = headerEdits(f.requestHeaderModifier); break
      case 'ResponseHeaderModifier': if (f.responseHeaderModifier !== undefined) responseHeaders = headerEdits(f.responseHeaderModifier); break
      case 'RequestRedirect': {
        const r = f.requestRedirect ?? {}
        redirect = Object.freeze({ scheme: r.scheme ?? null, hostname: r.hostname ?? null, path: pathModifier(r.path), port: r.port ?? null, statusCode: r.statusCode ?? 302 })
        break
      }
      case 'URLRewrite': {
        const r = f.urlRewrite ?? {}
        rewrite = Object.freeze({ hostname: r.hostname ?? null, path: pathModifier(r.path) })
        break
      }
      case 'RequestMirror': {
        const m = f.requestMirror
        if (m === undefined) break
        const backend = backendOf(m.backendRef)
        if (backend === null) break
        const percent = m.percent ?? (m.fraction === undefined ? 100 : 100 * m.fraction.numerator / (m.fraction.denominator ?? 100))
        mirrors.push(Object.freeze({ backend, percent }))
        break
      }
      default: break
    }
  }
  return { requestHeaders, responseHeaders, redirect, rewrite, mirrors: Object.freeze(mirrors) }
}

export function headerEdits (f: HTTPHeaderFilter): HeaderEdits {
  return Object.freeze({
    set: Object.freeze((f.set ?? []).map((h) => Object.freeze([h.name.toLowerCase(), h.value] as const))),
    add: Object.freeze((f.add ?? []).map((h) => Object.freeze([h.name.toLowerCase(), h.value] as const))),
    remove: Object.freeze((f.remove ?? []).map((n) => n.toLowerCase()))
  })
}

function pathModifier (p: HTTPPathModifier | undefined): PathModifier | null {
  if (p === undefined) return null
  return Object.freeze({ type: p.type, value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '' })
}

/**
 * A backendRef of kind Service: its Service and port must exist. The port may be left out
 * only when the backend is the parent Service itself (then the parent's port). References
 * to other namespaces are allowed (Ferry has no ReferenceGrant).
 */
function resolveBackend (b: BackendObjectReference, namespace: string, parent: Service, parentPort: number, services: ServicesView, problem: (text: string) => void): BackendRef | null {
  if (!((b.group === undefined || b.group === '' || b.group === 'core') && (b.kind === undefined || b.kind === 'Service'))) {
    problem(`backendRef ${b.group ?? ''}/${b.kind ?? ''} ${b.name}: only Services are supported`)
    return null
  }
  const ns = b.namespace ?? namespace
  const service = services.get(ns, b.name)
  if (service === undefined) { problem(`backendRef Service ${ns}/${b.name} does not exist`); return null }
  const port = b.port ?? (service === parent ? parentPort : undefined)
  if (port === undefined) { problem(`backendRef Service ${ns}/${b.name} needs a port`); return null }
  if (!service.ports.some((p) => p.port === port && p.protocol === 'TCP')) { problem(`backendRef Service ${ns}/${b.name} has no port ${port}`); return null }
  return Object.freeze({ service: serviceRef(service), port, subset: null })
}

// ---- matches ------------------------------------------------------------------------

function httpMatch (m: HTTPRouteMatch): RequestMatch {
  const path = m.path === undefined ? { type: 'PathPrefix' as const, value: '/' } : { type: m.path.type ?? 'PathPrefix', value: m.path.value ?? '/' }
  return Object.freeze({
    ...EMPTY_MATCH,
    path: Object.freeze(path),
    method: m.method ?? null,
    headers: headerMatches(m.headers ?? []),
    query: queryMatches(m.queryParams ?? [])
  })
}

function grpcMatch (m: GRPCRouteMatch): RequestMatch {
  const method = m.method
  return Object.freeze({
    ...EMPTY_MATCH,
    headers: headerMatches(m.headers ?? []),
    grpc: method === undefined ? null : Object.freeze({ type: method.type ?? 'Exact', service: method.service ?? null, method: method.method ?? null })
  })
}

/** Header names compare case-insensitively; of several entries with one name only the first counts. */
function headerMatches (hs: ReadonlyArray<{ readonly type?: 'Exact' | 'RegularExpression', readonly name: string, readonly value: string }>): readonly HeaderMatch[] {
  const seen = new Set<string>()
  const out: HeaderMatch[] = []
  for (const h of hs) {
    const name = h.name.toLowerCase()
    if (seen.has(name)) continue
    seen.add(name)
    out.push(Object.freeze({ name, match: Object.freeze({ type: h.type ?? 'Exact', value: h.value }), invert: false }))
  }
  return Object.freeze(out)
}

/** Query parameter names are case-sensitive; of several entries with one name only the first counts. */
function queryMatches (qs: ReadonlyArray<{ readonly type?: 'Exact' | 'RegularExpression', readonly name: string, readonly value: string }>): readonly QueryMatch[] {
  const seen = new Set<string>()
  const out: QueryMatch[] = []
  for (const q of qs) {
    if (seen.has(q.name)) continue
    seen.add(q.name)
    out.push(Object.freeze({ name: q.name, match: Object.freeze({ type: q.type ?? 'Exact', value: q.value }) }))
  }
  return Object.freeze(out)
}
