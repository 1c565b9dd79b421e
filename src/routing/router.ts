import type { Endpoint, ServicePortEntry } from '../discovery/service-index'
import type { ServiceIndex } from '../discovery/service-index'
import type { UpstreamTarget } from '../http/context'
import { type Backend, Backends, type RequestBalancerFactory } from './backends'
import { modifyPath, redirectLocation } from './location'
import { type Caller, compileMatch, MatchInput, type Matcher } from './match'
import type { ConnectionPoolLimits, LoadBalancerPolicy, RequestMatch, RouteResult, RoutedRequestView, RouteRule, ServiceRoutes, WeightedBackend } from './model'
import type { NodeLimits } from './node-limits'
import { Plan } from './plan'
import { RoutingTable } from './routing-table'

// A worker's router: per request on a Service port with routing, the RouteResult
// (model.ts). The first entry (rule, match) of the caller's ServiceRoutes that matches
// wins; none: 404. Then, in this order: a redirect answers; a fault abort is rolled; a
// backend is picked by weight (no usable backend: 500); a fault delay and the mirrors are
// rolled; the plan carries the rest. A GRPCRoute rule's retry policy may be lent by a
// VirtualService (lent-retries.ts). Randomness and time are injected.

export interface RouterDeps {
  readonly balancers: RequestBalancerFactory
  /** The node-wide limits; null: none (no budget: retries as the route says). */
  readonly limits: NodeLimits | null
  readonly random?: () => number
  readonly now?: () => number
}

/** The calling pod as routing needs it. */
export type RouteCaller = Caller

/** What /debug/config shows of one backend (Router.describe). */
export interface BackendView {
  readonly backend: string
  readonly policy: string | null
  readonly loadBalancer: string
  readonly endpoints: ReturnType<Backend['balancer']['describe']>
  readonly ejected: readonly string[]
  readonly budget: ReturnType<NonNullable<Backend['budget']>['counts']> | null
  readonly pool: (ReturnType<NonNullable<Backend['pool']>['counts']> & { readonly limits: ConnectionPoolLimits }) | null
}

/** Which entry matched and why: `ferry route check` and tests read it. */
export interface Selection {
  readonly routes: ServiceRoutes
  /** The index in routes.entries; -1: none matched. */
  readonly index: number
}

const MATCHERS = new WeakMap<ServiceRoutes, readonly Matcher[]>()

function matchersOf (routes: ServiceRoutes): readonly Matcher[] {
  let m = MATCHERS.get(routes)
  if (m === undefined) {
    m = Object.freeze(routes.entries.map((e) => compileMatch(e.match)))
    MATCHERS.set(routes, m)
  }
  return m
}

/** The first entry of `routes` whose match holds. */
export function selectEntry (routes: ServiceRoutes, input: MatchInput): Selection {
  const matchers = matchersOf(routes)
  for (let i = 0; i < matchers.length; i++) if (matchers[i](input)) return { routes, index: i }
  return { routes, index: -1 }
}

/** A weighted pick (weights ≥ 0; 0 never picked); null: no weight at all. */
export function pickWeighted (backends: readonly WeightedBackend[], roll: number): WeightedBackend | null {
  let total = 0
  for (const b of backends) total += b.weight
  if (total <= 0) return null
  let at = roll * total
  for (const b of backends) {
    if (b.weight <= 0) continue
    if (at < b.weight) return b
    at -= b.weight
  }
  for (let i = backends.length - 1; i >= 0; i--) if (backends[i].weight > 0) return backends[i]
  return null
}

export class Router {
  private table = RoutingTable.empty()
  private readonly backends: Backends
  private readonly random: () => number
  private readonly now: () => number

  constructor (deps: RouterDeps) {
    this.backends = new Backends(deps.balancers, deps.limits)
    this.random = deps.random ?? Math.random
    this.now = deps.now ?? Date.now
  }

  /** A new cluster or configuration snapshot (either may be the one in force). */
  update (table: RoutingTable, index: ServiceIndex): void {
    this.table = table
    this.backends.update(index.entries(), (ref) => table.policyFor(ref))
  }

  routing (): RoutingTable { return this.table }

  /**
   * The route function of a connection to `entry` from `caller` (HttpDownstream.route),
   * or null when the Service port has no routes and no DestinationRule (plain balancing).
   * Routes are read per request: a new snapshot applies to the next request.
   */
  forConnection (entry: ServicePortEntry, caller: RouteCaller, targetOf: (e: Endpoint) => UpstreamTarget): ((view: RoutedRequestView) => RouteResult) | null {
    const service = `${entry.service.namespace}/${entry.service.name}`
    if (!this.table.hasRouting(service, entry.port.port)) return null
    return (view) => this.route(view, entry, service, caller, targetOf)
  }

  route (view: RoutedRequestView, entry: ServicePortEntry, service: string, caller: RouteCaller, targetOf: (e: Endpoint) => UpstreamTarget): RouteResult {
    const port = entry.port.port
    const routes = this.table.routesFor(service, port, caller.namespace)
    const input = new MatchInput(view, caller)
    const env = { now: this.now, targetOf }
    if (routes === null) {
      const backend = this.backend({ service, port, subset: null }, entry.family)
      return { kind: 'forward', plan: new Plan({ rule: null, backend, path: null, authority: null, requestHeaders: [], responseHeaders: [], timeoutMs: null, perTryTimeoutMs: null, retry: null, delayMs: 0, mirrors: [], hash: hashOf(backend.policy.loadBalancer, input) }, env) }
    }
    const sel = selectEntry(routes, input)
    if (sel.index < 0) return { kind: 'not_found', routes }
    const { rule, match } = routes.entries[sel.index]
    if (rule.redirect !== null) {
      return { kind: 'redirect', rule, status: rule.redirect.statusCode, location: redirectLocation(rule.redirect, { host: view.host, path: view.path, query: view.query }, port, match?.path ?? null) }
    }
    const abort = rule.fault?.abort
    if (abort != null && this.roll(abort.percent)) {
      return { kind: 'abort', rule, httpStatus: abort.httpStatus ?? (abort.grpcStatus !== null ? 200 : 500), grpcStatus: abort.grpcStatus, flag: 'FI' }
    }
    const picked = pickWeighted(rule.backends, this.random())
    if (picked === null) return { kind: 'abort', rule, httpStatus: 500, grpcStatus: null, flag: 'NR' }
    const backend = this.backend(picked.backend, entry.family)
    const delay = rule.fault?.delay
    const mirrors: Backend[] = []
    for (const m of rule.mirrors) if (this.roll(m.percent)) mirrors.push(this.backend(m.backend, entry.family))
    const retry = rule.retry ?? this.table.lentRetry(service, port, rule, input)?.retry ?? null
    const retryTimeout = retry?.perTryTimeoutMs ?? null
    const perTry = rule.backendTimeoutMs === null ? retryTimeout : retryTimeout === null ? rule.backendTimeoutMs : Math.min(retryTimeout, rule.backendTimeoutMs)
    const plan = new Plan({
      rule,
      backend,
      path: rewrittenPath(rule, match, view),
      authority: rule.rewrite?.hostname ?? null,
      requestHeaders: [rule.requestHeaders, picked.requestHeaders].filter((h) => h !== null),
      responseHeaders: [rule.responseHeaders, picked.responseHeaders].filter((h) => h !== null),
      timeoutMs: rule.timeoutMs,
      perTryTimeoutMs: perTry,
      retry,
      delayMs: delay != null && this.roll(delay.percent) ? delay.ms : 0,
      mirrors,
      hash: hashOf(backend.policy.loadBalancer, input)
    }, env)
    return { kind: 'forward', plan }
  }

  /**
   * Every backend this worker has used, for /debug/config: its endpoints as this worker's
   * balancer sees them, and its node-wide limits as they stand (the same in every worker):
   * ejections, the retry budget's window (requests, retries, retries allowed), the pool's
   * requests and connections held with the DestinationRule's limits (null: no pool limits).
   */
  describe (): BackendView[] {
    const now = this.now()
    return [...this.backends.all()].map((b) => ({
      backend: b.key,
      policy: b.policy.source,
      loadBalancer: b.policy.loadBalancer.type,
      endpoints: b.balancer.describe(),
      ejected: b.outliers === null ? [] : b.endpoints.filter((e) => b.outliers?.ejected(e.id, now) === true).map((e) => e.id),
      budget: b.budget?.counts() ?? null,
      pool: b.pool === null || b.policy.connectionPool === null ? null : { ...b.pool.counts(), limits: b.policy.connectionPool }
    }))
  }

  private backend (ref: Parameters<Backends['get']>[0], family: number): Backend {
    return this.backends.get(ref, family, (r) => this.table.policyFor(r))
  }

  private roll (percent: number): boolean {
    return percent >= 100 || (percent > 0 && this.random() * 100 < percent)
  }
}

/** URLRewrite / Istio rewrite: the new request target (path and query), null: unchanged. */
function rewrittenPath (rule: RouteRule, match: RequestMatch | null, view: RoutedRequestView): string | null {
  const modifier = rule.rewrite?.path
  if (modifier == null) return null
  const path = modifyPath(view.path, modifier, match?.path ?? null)
  return view.query === '' ? path : `${path}?${view.query}`
}

/** Consistent hashing's input for a request under a policy, null when the policy does not hash or the request lacks it. */
function hashOf (lb: LoadBalancerPolicy, input: MatchInput): string | null {
  if (lb.type !== 'CONSISTENT_HASH') return null
  const key = lb.key
  if ('header' in key) return input.view.header(key.header) ?? null
  if ('cookie' in key) return cookie(input.view.header('cookie'), key.cookie.name)
  if ('queryParameter' in key) return input.query(key.queryParameter) ?? null
  return input.caller.ip === '' ? null : input.caller.ip
}

function cookie (header: string | undefined, name: string): string | null {
  if (header === undefined) return null
  for (const part of header.split(/;\s*/)) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1)
  }
  return null
}
