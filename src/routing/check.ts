import type { ClusterSnapshot } from '../discovery/model'
import { redirectLocation, modifyPath } from './location'
import { type Caller, MatchInput } from './match'
import type { LentRetry, RequestMatch, RetryOn, RetryPolicy, RoutedRequestView, RouteRule, TrafficPolicy } from './model'
import { selectEntry } from './router'
import type { RoutingTable } from './routing-table'

// `ferry route check` and /debug/routes: which route, rule and backend a request from a
// pod to a Service port would take, and why — the same compiled routes and matching as
// the proxy's router (router.ts), without sending anything. Weighted picks and fault
// rolls are shown as their chances, not rolled; a retry policy a VirtualService lends to a
// GRPCRoute rule (lent-retries.ts) is shown with the rule it comes from.

export interface RouteCheckInput {
  /** NS/POD: the calling pod. */
  readonly from: string
  /** NS/SERVICE[:PORT] (PORT a number or a port name; default the Service's only or first port). */
  readonly to: string
  readonly path?: string
  readonly method?: string
  /** Lower-case names. */
  readonly headers?: Readonly<Record<string, string>>
  readonly host?: string
}

export interface RouteCheck {
  readonly service: string
  readonly port: number
  readonly caller: { readonly namespace: string, readonly pod: string | null }
  /** What the request gets: route (a rule forwards), not_found (404), redirect, abort (no usable backend), none (no routes: the Service's endpoints, balanced). */
  readonly outcome: 'route' | 'not_found' | 'redirect' | 'abort' | 'none'
  readonly kind: string | null
  readonly objects: readonly string[]
  /** Entries tried before the one that matched (or all, when none did): their rule and match. */
  readonly skipped: readonly string[]
  readonly rule: string | null
  readonly match: string | null
  readonly redirect: { readonly status: number, readonly location: string } | null
  readonly rewrite: string | null
  readonly backends: ReadonlyArray<{ readonly backend: string, readonly weight: number, readonly chance: number, readonly policy: string, readonly endpoints: number }>
  readonly fault: string | null
  readonly timeouts: string | null
  readonly retry: string | null
  readonly mirrors: readonly string[]
  readonly problems: readonly string[]
  readonly why: string
}

export function checkRoute (table: RoutingTable, cluster: ClusterSnapshot | null, input: RouteCheckInput): RouteCheck {
  const [fromNs, fromPod] = splitRef(input.from, 'from')
  const [svcNs, rest] = splitRef(input.to, 'to')
  const colon = rest.lastIndexOf(':')
  const name = colon < 0 ? rest : rest.slice(0, colon)
  const portText = colon < 0 ? null : rest.slice(colon + 1)
  const service = cluster?.services.find((s) => s.namespace === svcNs && s.name === name)
  if (service === undefined) throw new Error(`no Service ${svcNs}/${name} in the cluster snapshot`)
  const sp = portText === null ? service.ports[0] : service.ports.find((p) => String(p.port) === portText || p.name === portText)
  if (sp === undefined) throw new Error(`Service ${svcNs}/${name} has no port ${portText ?? ''}`)
  const pod = cluster?.pods.find((p) => p.namespace === fromNs && p.name === fromPod)
  const caller: Caller = { namespace: fromNs, labels: pod?.labels ?? {}, ip: pod?.podIPs[0] ?? '' }
  const [path, query] = splitPath(input.path ?? '/')
  const headers = input.headers ?? {}
  const view: RoutedRequestView = {
    method: input.method ?? 'GET',
    path,
    query,
    host: input.host ?? `${service.name}.${service.namespace}.svc.${table.services.clusterDomain}:${sp.port}`,
    grpc: (headers['content-type'] ?? '').startsWith('application/grpc'),
    header: (n) => headers[n]
  }
  const svc = `${service.namespace}/${service.name}`
  const base = { service: svc, port: sp.port, caller: { namespace: fromNs, pod: pod?.name ?? null } }
  const routes = table.routesFor(svc, sp.port, fromNs)
  const problemsOf = (objects: readonly string[]): string[] => objects.flatMap((o) => (table.problems().get(o) ?? []).map((p) => `${o}: ${p}`))
  const endpointsOf = (s: string, labels: Readonly<Record<string, string>> | null): number => {
    const target = cluster?.services.find((x) => `${x.namespace}/${x.name}` === s)
    if (target?.selector == null) return 0
    const selector = target.selector
    return cluster?.pods.filter((p) => p.namespace === target.namespace && p.ready && Object.entries(selector).every(([k, v]) => p.labels[k] === v) && (labels === null || Object.entries(labels).every(([k, v]) => p.labels[k] === v))).length ?? 0
  }
  const policyText = (p: TrafficPolicy): string => `${p.loadBalancer.type}${p.connectionPool === null ? '' : ', pool limits'}${p.outlierDetection === null ? '' : ', outlier detection'} (${p.source ?? 'defaults'})`
  const none = { kind: null, objects: [], skipped: [], rule: null, match: null, redirect: null, rewrite: null, fault: null, timeouts: null, retry: null, mirrors: [], problems: [] }
  if (routes === null) {
    const policy = table.policyFor({ service: svc, port: sp.port, subset: null })
    return {
      ...base,
      ...none,
      outcome: 'none',
      backends: [{ backend: `${svc}:${sp.port}`, weight: 1, chance: 1, policy: policyText(policy), endpoints: endpointsOf(svc, null) }],
      why: table.hasRouting(svc, sp.port) ? `no route applies to callers in ${fromNs}; the Service's endpoints, balanced by its DestinationRule` : 'no route and no DestinationRule targets this Service port: the Service\'s endpoints, balanced by default'
    }
  }
  const matchInput = new MatchInput(view, caller)
  const sel = selectEntry(routes, matchInput)
  const skipped = routes.entries.slice(0, sel.index < 0 ? routes.entries.length : sel.index).map((e) => `${e.rule.name}: ${matchText(e.match)}`)
  const common = { kind: routes.kind, objects: routes.objects, skipped, problems: problemsOf(routes.objects) }
  if (sel.index < 0) {
    return { ...base, ...none, ...common, outcome: 'not_found', backends: [], why: `no match of the ${routes.entries.length} entr${routes.entries.length === 1 ? 'y' : 'ies'} of ${routes.objects.join(', ')} holds: 404 (NR)` }
  }
  const { rule, match } = routes.entries[sel.index]
  const lent = table.lentRetry(svc, sp.port, rule, matchInput)
  const retry = rule.retry ?? lent?.retry ?? null
  const ruleBits = { rule: rule.name, match: matchText(match) }
  if (rule.redirect !== null) {
    const location = redirectLocation(rule.redirect, view, sp.port, match?.path ?? null)
    return { ...base, ...none, ...common, ...ruleBits, outcome: 'redirect', redirect: { status: rule.redirect.statusCode, location }, backends: [], why: `${rule.name} matches (${ruleBits.match}) and redirects` }
  }
  const total = rule.backends.reduce((n, b) => n + b.weight, 0)
  const backends = rule.backends.map((b) => ({
    backend: `${b.backend.service}:${b.backend.port}${b.backend.subset === null ? '' : ` subset ${b.backend.subset.name}`}`,
    weight: b.weight,
    chance: total === 0 ? 0 : b.weight / total,
    policy: policyText(table.policyFor(b.backend)),
    endpoints: endpointsOf(b.backend.service, b.backend.subset?.labels ?? null)
  }))
  return {
    ...base,
    ...common,
    ...ruleBits,
    outcome: total === 0 ? 'abort' : 'route',
    redirect: null,
    rewrite: rewriteText(rule, match, view.path),
    backends,
    fault: rule.fault === null ? null : [rule.fault.abort === null ? '' : `abort ${rule.fault.abort.httpStatus ?? `grpc ${rule.fault.abort.grpcStatus ?? ''}`} for ${rule.fault.abort.percent}%`, rule.fault.delay === null ? '' : `delay ${rule.fault.delay.ms} ms for ${rule.fault.delay.percent}%`].filter((x) => x !== '').join(', '),
    timeouts: rule.timeoutMs === null && rule.backendTimeoutMs === null ? null : `request ${rule.timeoutMs ?? '-'} ms, per try ${rule.backendTimeoutMs ?? retry?.perTryTimeoutMs ?? '-'} ms`,
    retry: retryText(retry, lent),
    mirrors: rule.mirrors.map((m) => `${m.backend.service}:${m.backend.port} (${m.percent}%)`),
    why: total === 0 ? `${rule.name} matches (${ruleBits.match}) but has no usable backend: 500` : `${rule.name} matches (${ruleBits.match})${sel.index > 0 ? `, after ${sel.index} entr${sel.index === 1 ? 'y' : 'ies'} that do not` : ''}`
  }
}

export function matchText (m: RequestMatch | null): string {
  if (m === null) return 'every request'
  const parts: string[] = []
  if (m.path !== null) parts.push(`path ${m.path.type} ${m.path.value}`)
  if (m.method !== null) parts.push(`method ${m.method}`)
  for (const h of m.headers) parts.push(`${h.invert ? 'without ' : ''}header ${h.name}${h.match === null ? '' : ` ${h.match.type} ${h.match.value}`}`)
  for (const q of m.query) parts.push(`query ${q.name}${q.match === null ? '' : ` ${q.match.type} ${q.match.value}`}`)
  if (m.grpc !== null) parts.push(`grpc ${m.grpc.type} ${m.grpc.service ?? '*'}/${m.grpc.method ?? '*'}`)
  if (m.authority !== null) parts.push(`authority ${m.authority.type} ${m.authority.value}`)
  if (m.sourceLabels !== null) parts.push(`source labels ${Object.entries(m.sourceLabels).map(([k, v]) => `${k}=${v}`).join(',')}`)
  if (m.sourceNamespace !== null) parts.push(`source namespace ${m.sourceNamespace}`)
  return parts.length === 0 ? 'every request' : parts.join(', ')
}

/** A check as text, one fact a line. */
export function routeCheckText (c: RouteCheck): string {
  const lines = [`${c.caller.namespace}/${c.caller.pod ?? '?'} → ${c.service}:${c.port}: ${c.outcome}`, `  why: ${c.why}`]
  if (c.kind !== null) lines.push(`  routes: ${c.kind} (${c.objects.join(', ')})`)
  for (const s of c.skipped) lines.push(`  not matched: ${s}`)
  if (c.redirect !== null) lines.push(`  redirect: ${c.redirect.status} ${c.redirect.location}`)
  if (c.rewrite !== null) lines.push(`  rewrite: ${c.rewrite}`)
  for (const b of c.backends) lines.push(`  backend: ${b.backend} weight ${b.weight} (${(100 * b.chance).toFixed(1)}%), ${b.endpoints} ready endpoint${b.endpoints === 1 ? '' : 's'}, ${b.policy}`)
  if (c.fault !== null) lines.push(`  fault: ${c.fault}`)
  if (c.timeouts !== null) lines.push(`  timeouts: ${c.timeouts}`)
  if (c.retry !== null) lines.push(`  retry: ${c.retry}`)
  for (const m of c.mirrors) lines.push(`  mirror: ${m}`)
  for (const p of c.problems) lines.push(`  problem: ${p}`)
  return lines.join('\n') + '\n'
}

function rewriteText (rule: RouteRule, match: RequestMatch | null, path: string): string | null {
  const r = rule.rewrite
  if (r === null) return null
  return [r.path === null ? '' : `path ${path} → ${modifyPath(path, r.path, match?.path ?? null)}`, r.hostname === null ? '' : `host → ${r.hostname}`].filter((x) => x !== '').join(', ')
}

/** The retry policy in force, and where a lent one comes from (lent-retries.ts); null: no retry and none lent. */
function retryText (retry: RetryPolicy | null, lent: LentRetry | null): string | null {
  const from = lent === null ? '' : `from ${lent.name}, lent to the GRPCRoute; `
  if (retry === null) return lent === null ? null : `none (${from}it sets no retries)`
  return `${retry.attempts} retr${retry.attempts === 1 ? 'y' : 'ies'} on ${retryOnText(retry.on)} (${from}within the node's retry budget)`
}

function retryOnText (on: RetryOn): string {
  return [on.connectFailure ? 'connect-failure' : '', on.reset ? 'reset' : '', on.serverError ? '5xx' : '', on.gatewayError ? 'gateway-error' : '', on.retriable4xx ? '409' : '', ...on.statuses.map(String), ...on.grpcStatuses.map((g) => `grpc ${g}`)].filter((x) => x !== '').join(', ')
}

function splitRef (text: string, what: string): [string, string] {
  const slash = text.indexOf('/')
  if (slash <= 0 || slash === text.length - 1) throw new Error(`--${what} ${text}: expected NAMESPACE/NAME`)
  return [text.slice(0, slash), text.slice(slash + 1)]
}

function splitPath (target: string): [string, string] {
  const q = target.indexOf('?')
  return q < 0 ? [target, ''] : [target.slice(0, q), target.slice(q + 1)]
}
