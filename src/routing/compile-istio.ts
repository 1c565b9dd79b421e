import type { Service } from '../discovery/model'
import type { Destination, HeaderOperations, HTTPMatchRequest, HTTPRetry, IstioHTTPRoute, IstioStringMatch, VirtualServiceSpec } from './api-types'
import { byAge, type RouteObject, type ServicesView, serviceRef } from './cluster-view'
import { portKey, retryOf } from './compile-gateway'
import { timeoutMs } from './duration'
import type { BackendRef, Fault, HeaderEdits, HeaderMatch, LentRetry, Mirror, QueryMatch, RequestMatch, RetryPolicy, RouteRule, ServiceRoutes, StringMatch, WeightedBackend } from './model'
import type { DestinationRules } from './traffic-policy'

// VirtualServices → ServiceRoutes per Service port (every caller). A VirtualService
// applies to the Services its `hosts` name (short name in its namespace, name.namespace,
// name.namespace.svc[.cluster domain]); its `http` rules are tried in the order written
// (a match's `port` restricts it to that Service port). Several VirtualServices for one
// Service: their rules one after the other, the oldest's first. Destinations resolve to
// Service ports and DestinationRule subsets (labels); what does not resolve is left out
// and reported. A Service port with a Gateway API route ignores VirtualServices
// (overriddenVirtualServices names them) but for the retry policies they lend to
// GRPCRoute rules (`retries` below; lent-retries.ts).

export interface IstioRouting {
  /** By "namespace/name:port". */
  readonly ports: ReadonlyMap<string, ServiceRoutes>
  /** "VirtualService ns/name" → what did not resolve. */
  readonly problems: ReadonlyMap<string, readonly string[]>
  /** "VirtualService ns/name" → the Services ("ns/name") it targets. */
  readonly targets: ReadonlyMap<string, readonly string[]>
  /**
   * By "namespace/name:port": every (rule, match) in the order tried, with the retry
   * policy its `retries` field sets (none without the field: Istio's default is not
   * lent), and the VirtualService's namespace. What lent-retries.ts lends to GRPCRoutes.
   */
  readonly retries: ReadonlyMap<string, ReadonlyArray<{ readonly namespace: string, readonly lent: LentRetry }>>
}

const RETRY_GRPC: Readonly<Record<string, number>> = Object.freeze({ cancelled: 1, 'deadline-exceeded': 4, internal: 13, 'resource-exhausted': 8, unavailable: 14 })

/** Istio's retry policy when a rule sets none (attempts 2; connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes). */
export const ISTIO_DEFAULT_RETRY: RetryPolicy = parseRetry({ attempts: 2, retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' })

export function compileIstio (vss: ReadonlyArray<RouteObject<VirtualServiceSpec>>, rules: DestinationRules, services: ServicesView): IstioRouting {
  const problems = new Map<string, string[]>()
  const targets = new Map<string, string[]>()
  const entriesByPort = new Map<string, Array<{ rule: RouteRule, match: RequestMatch | null }>>()
  const objectsByPort = new Map<string, string[]>()
  const retriesByPort = new Map<string, Array<{ readonly namespace: string, readonly lent: LentRetry }>>()
  for (const vs of [...vss].sort(byAge)) {
    const ns = vs.metadata.namespace
    const ref = `${ns}/${vs.metadata.name}`
    const name = `VirtualService ${ref}`
    const problem = (t: string): void => { const l = problems.get(name); if (l === undefined) problems.set(name, [t]); else if (!l.includes(t)) l.push(t) }
    if (vs.spec.gateways !== undefined && !vs.spec.gateways.includes('mesh')) continue
    const hostServices: Service[] = []
    for (const host of vs.spec.hosts ?? []) {
      const s = services.byHost(host, ns)
      if (s === undefined) { problem(`host ${host} names no Service`); continue }
      if (!hostServices.includes(s)) hostServices.push(s)
    }
    targets.set(name, hostServices.map(serviceRef))
    for (const service of hostServices) {
      for (const port of service.ports) {
        if (port.protocol !== 'TCP') continue
        const key = portKey(serviceRef(service), port.port)
        const list = entriesByPort.get(key) ?? []
        const retries = retriesByPort.get(key) ?? []
        ;(vs.spec.http ?? []).forEach((http, index) => {
          const matches = (http.match ?? []).filter((m) => m.port === undefined || m.port === port.port)
          if (http.match !== undefined && http.match.length > 0 && matches.length === 0) return
          const rule = compileRule(http, ref, index, ns, service, port.port, rules, services, problem)
          const compiled = matches.length === 0 ? [null] : matches.map(requestMatch)
          const retry = http.retries === undefined ? null : rule.retry
          for (const match of compiled) {
            list.push({ rule, match })
            retries.push(Object.freeze({ namespace: ns, lent: Object.freeze({ ref, name: rule.name, match, retry }) }))
          }
        })
        entriesByPort.set(key, list)
        retriesByPort.set(key, retries)
        objectsByPort.set(key, [...(objectsByPort.get(key) ?? []), name])
      }
    }
  }
  const ports = new Map<string, ServiceRoutes>()
  for (const [key, entries] of entriesByPort) {
    ports.set(key, Object.freeze({ kind: 'VirtualService' as const, objects: Object.freeze(objectsByPort.get(key) ?? []), entries: Object.freeze(entries.map((e) => Object.freeze(e))) }))
  }
  return { ports, problems, targets, retries: retriesByPort }
}

function compileRule (http: IstioHTTPRoute, ref: string, index: number, namespace: string, service: Service, port: number, rules: DestinationRules, services: ServicesView, problem: (t: string) => void): RouteRule {
  const destination = (d: Destination): BackendRef | null => resolveDestination(d, namespace, service, port, rules, services, problem)
  const backends: WeightedBackend[] = []
  const routes = http.route ?? []
  const allUnweighted = routes.every((r) => r.weight === undefined)
  for (const r of routes) {
    const backend = destination(r.destination)
    if (backend === null) continue
    backends.push(Object.freeze({
      backend,
      weight: r.weight ?? (routes.length === 1 || allUnweighted ? 1 : 0),
      requestHeaders: headerEdits(r.headers?.request),
      responseHeaders: headerEdits(r.headers?.response)
    }))
  }
  const mirrors: Mirror[] = []
  if (http.mirror !== undefined) {
    const b = destination(http.mirror)
    if (b !== null) mirrors.push(Object.freeze({ backend: b, percent: http.mirrorPercentage?.value ?? http.mirrorPercent ?? 100 }))
  }
  for (const m of http.mirrors ?? []) {
    const b = destination(m.destination)
    if (b !== null) mirrors.push(Object.freeze({ backend: b, percent: m.percentage?.value ?? 100 }))
  }
  const r = http.redirect
  const w = http.rewrite
  return Object.freeze({
    name: `VirtualService ${ref} rule ${index}${http.name === undefined ? '' : ` (${http.name})`}`,
    source: Object.freeze({ kind: 'VirtualService' as const, ref, rule: index }),
    matches: Object.freeze((http.match ?? []).map(requestMatch)),
    backends: Object.freeze(backends),
    requestHeaders: headerEdits(http.headers?.request),
    responseHeaders: headerEdits(http.headers?.response),
    redirect: r === undefined
      ? null
      : Object.freeze({
        scheme: r.scheme ?? null,
        hostname: r.authority ?? null,
        path: r.uri === undefined ? null : Object.freeze({ type: 'ReplaceFullPath' as const, value: r.uri }),
        port: r.port ?? null,
        statusCode: r.redirectCode ?? 301
      }),
    // Istio replaces the matched prefix (the whole path after an exact or regex match): router.ts's rewritePath reads the entry's match.
    rewrite: w === undefined ? null : Object.freeze({ hostname: w.authority ?? null, path: w.uri === undefined ? null : Object.freeze({ type: 'ReplacePrefixMatch' as const, value: w.uri }) }),
    mirrors: Object.freeze(mirrors),
    timeoutMs: timeoutMs(http.timeout),
    backendTimeoutMs: null,
    retry: http.retries === undefined ? ISTIO_DEFAULT_RETRY : (http.retries.attempts ?? 0) === 0 ? null : parseRetry(http.retries),
    fault: faultOf(http)
  })
}

/** A destination's Service port: `port.number`, else the Service's only port, else (the VirtualService's own Service) the port called. */
function resolveDestination (d: Destination, namespace: string, called: Service, calledPort: number, rules: DestinationRules, services: ServicesView, problem: (t: string) => void): BackendRef | null {
  const service = services.byHost(d.host, namespace)
  if (service === undefined) { problem(`destination host ${d.host} names no Service`); return null }
  const tcp = service.ports.filter((p) => p.protocol === 'TCP')
  const port = d.port?.number ?? (service === called ? calledPort : tcp.length === 1 ? tcp[0].port : undefined)
  if (port === undefined) { problem(`destination ${d.host} needs port.number (the Service has several ports)`); return null }
  if (!tcp.some((p) => p.port === port)) { problem(`destination ${d.host} has no port ${port}`); return null }
  let subset: BackendRef['subset'] = null
  if (d.subset !== undefined) {
    const labels = rules.byService.get(serviceRef(service))?.subsets.get(d.subset)
    if (labels === undefined) { problem(`destination ${d.host} subset ${d.subset}: no DestinationRule of ${serviceRef(service)} defines it`); return null }
    subset = Object.freeze({ name: d.subset, labels })
  }
  return Object.freeze({ service: serviceRef(service), port, subset })
}

function stringMatch (m: IstioStringMatch | undefined): StringMatch | null {
  if (m === undefined) return null
  if (m.exact !== undefined) return Object.freeze({ type: 'Exact', value: m.exact })
  if (m.prefix !== undefined) return Object.freeze({ type: 'Prefix', value: m.prefix })
  if (m.regex !== undefined) return Object.freeze({ type: 'RegularExpression', value: m.regex })
  return null
}

/** A regular expression matching `text` with any letter case (ignoreUriCase). */
function caseless (text: string, prefix: boolean): string {
  const body = [...text].map((c) => /[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('')
  return prefix ? `${body}.*` : body
}

export function requestMatch (m: HTTPMatchRequest): RequestMatch {
  let path: RequestMatch['path'] = null
  const uri = stringMatch(m.uri)
  if (uri !== null) {
    if (m.ignoreUriCase === true && uri.type !== 'RegularExpression') path = Object.freeze({ type: 'RegularExpression', value: caseless(uri.value, uri.type === 'Prefix') })
    else path = Object.freeze({ type: uri.type === 'Exact' ? 'Exact' : uri.type === 'Prefix' ? 'Prefix' : 'RegularExpression', value: uri.value })
  }
  const headers: HeaderMatch[] = []
  for (const [name, sm] of Object.entries(m.headers ?? {})) headers.push(Object.freeze({ name: name.toLowerCase(), match: stringMatch(sm), invert: false }))
  for (const [name, sm] of Object.entries(m.withoutHeaders ?? {})) headers.push(Object.freeze({ name: name.toLowerCase(), match: stringMatch(sm), invert: true }))
  const query: QueryMatch[] = Object.entries(m.queryParams ?? {}).map(([name, sm]) => Object.freeze({ name, match: stringMatch(sm) }))
  const method = stringMatch(m.method)
  if (method !== null && method.type !== 'Exact') headers.push(Object.freeze({ name: ':method', match: method, invert: false }))
  return Object.freeze({
    path,
    method: method !== null && method.type === 'Exact' ? method.value : null,
    headers: Object.freeze(headers),
    query: Object.freeze(query),
    grpc: null,
    authority: stringMatch(m.authority),
    sourceLabels: m.sourceLabels === undefined ? null : Object.freeze({ ...m.sourceLabels }),
    sourceNamespace: m.sourceNamespace ?? null
  })
}

function headerEdits (h: HeaderOperations | undefined): HeaderEdits | null {
  if (h === undefined) return null
  return Object.freeze({
    set: Object.freeze(Object.entries(h.set ?? {}).map(([k, v]) => Object.freeze([k.toLowerCase(), v] as const))),
    add: Object.freeze(Object.entries(h.add ?? {}).map(([k, v]) => Object.freeze([k.toLowerCase(), v] as const))),
    remove: Object.freeze((h.remove ?? []).map((n) => n.toLowerCase()))
  })
}

export const GRPC_STATUS: Readonly<Record<string, number>> = Object.freeze({
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16
})

/** Istio's HTTPRetry: `retryOn` tokens as Envoy reads them (numbers are retriable statuses). */
export function parseRetry (r: HTTPRetry): RetryPolicy {
  const base = retryOf([], r.attempts ?? 2, r.backoff)
  const on = { connectFailure: false, reset: false, serverError: false, gatewayError: false, retriable4xx: false, statuses: [] as number[], grpcStatuses: [] as number[] }
  for (const raw of (r.retryOn ?? 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes').split(',')) {
    const t = raw.trim()
    if (/^\d{3}$/.test(t)) on.statuses.push(Number(t))
    else if (t === '5xx') on.serverError = true
    else if (t === 'gateway-error') on.gatewayError = true
    else if (t === 'reset' || t === 'refused-stream') on.reset = true
    else if (t === 'connect-failure') on.connectFailure = true
    else if (t === 'retriable-4xx') on.retriable4xx = true
    else if (RETRY_GRPC[t] !== undefined) on.grpcStatuses.push(RETRY_GRPC[t])
  }
  return Object.freeze({
    ...base,
    perTryTimeoutMs: timeoutMs(r.perTryTimeout),
    on: Object.freeze({ ...on, statuses: Object.freeze(on.statuses), grpcStatuses: Object.freeze(on.grpcStatuses) })
  })
}

function faultOf (http: IstioHTTPRoute): Fault | null {
  const f = http.fault
  if (f === undefined) return null
  const d = f.delay
  const a = f.abort
  const grpc = a?.grpcStatus === undefined ? null : /^\d+$/.test(a.grpcStatus) ? Number(a.grpcStatus) : GRPC_STATUS[a.grpcStatus.toUpperCase()] ?? 2
  return Object.freeze({
    delay: d === undefined ? null : Object.freeze({ percent: d.percentage?.value ?? d.percent ?? 100, ms: timeoutMs(d.fixedDelay) ?? 0 }),
    abort: a === undefined ? null : Object.freeze({ percent: a.percentage?.value ?? 100, httpStatus: a.httpStatus ?? null, grpcStatus: grpc })
  })
}
