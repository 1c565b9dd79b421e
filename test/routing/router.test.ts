import t from 'tap'
import { ServiceIndex, type Endpoint, type ServicePortEntry } from '../../src/discovery/service-index'
import type { UpstreamTarget } from '../../src/http/context'
import type { OutlierTracker, PoolGate, RetryBudget } from '../../src/limits/types'
import type { HTTPRouteSpec } from '../../src/routing/api-types'
import type { RouteConfig } from '../../src/routing/routing-table'
import { RoutingTable } from '../../src/routing/routing-table'
import type { RequestPlan, RouteResult } from '../../src/routing/model'
import type { NodeLimits } from '../../src/routing/node-limits'
import { Router } from '../../src/routing/router'
import { cluster, obj, pod, request, seeded, service, TestRoundRobin } from './fixture'

// The router's decision per request: 404 when no rule matches, redirects with the
// Location Gateway API defines, fault aborts and delays at their percentages, weighted
// backends at their weights, subsets, and the plan's attempts over a balancer and the
// node-wide limits.

function setup (config: Partial<RouteConfig>, o: { random?: () => number, limits?: NodeLimits } = {}): { router: Router, entry: (svc: string) => ServicePortEntry, route: (svc: string, view: ReturnType<typeof request>, caller?: string) => RouteResult } {
  const web = service('app', 'web')
  const v2 = service('app', 'web-v2')
  const shadow = service('app', 'shadow')
  const reviews = service('app', 'reviews', [9080], { app: 'reviews' })
  const c = cluster([web, v2, shadow, reviews], [
    pod('app', 'web-1', { app: 'web' }), pod('app', 'web-2', { app: 'web' }), pod('app', 'v2-1', { app: 'web-v2' }), pod('app', 'shadow-1', { app: 'shadow' }),
    pod('app', 'reviews-v1', { app: 'reviews', version: 'v1' }), pod('app', 'reviews-v2a', { app: 'reviews', version: 'v2' }), pod('app', 'reviews-v2b', { app: 'reviews', version: 'v2' })
  ])
  const index = ServiceIndex.build(c)
  const router = new Router({ balancers: () => new TestRoundRobin<Endpoint>(), limits: o.limits ?? null, ...(o.random === undefined ? {} : { random: o.random }) })
  router.update(RoutingTable.build(c, config), index)
  const entry = (svc: string): ServicePortEntry => [...index.entries()].find((e) => `${e.service.namespace}/${e.service.name}` === svc) as ServicePortEntry
  const route = (svc: string, view: ReturnType<typeof request>, caller = 'app'): RouteResult => {
    const fn = router.forConnection(entry(svc), { namespace: caller, labels: {}, ip: '10.0.0.1' }, targetOf)
    if (fn === null) throw new Error('no routing')
    return fn(view)
  }
  return { router, entry, route }
}

function targetOf (e: Endpoint): UpstreamTarget {
  return { key: e.id, address: { address: e.address, port: e.port, family: e.family }, record: null as never, local: null, dial: async () => { throw new Error('not dialed in these tests') } }
}

const httpRoute = (rules: NonNullable<HTTPRouteSpec['rules']>): Partial<RouteConfig> => ({ httpRoutes: [obj('app', 'r', { parentRefs: [{ kind: 'Service', name: 'web' }], rules })] })

function plan (r: RouteResult): RequestPlan {
  if (r.kind !== 'forward') throw new Error(`expected forward, got ${r.kind}`)
  return r.plan
}

t.test('no rule matches: 404 (not_found); a port without routing: no route function', async (t) => {
  const { router, entry, route } = setup(httpRoute([{ matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'web', port: 80 }] }]))
  t.equal(route('app/web', request({ path: '/apix' })).kind, 'not_found')
  t.equal(route('app/web', request({ path: '/api/x' })).kind, 'forward')
  t.equal(router.forConnection(entry('app/shadow'), { namespace: 'app', labels: {}, ip: '' }, targetOf), null)
})

t.test('weights: a 90/10 split over 20,000 requests within ±1 point; weight 0 never', async (t) => {
  const { route } = setup(httpRoute([{ backendRefs: [{ name: 'web', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: 10 }, { name: 'shadow', port: 80, weight: 0 }] }]), { random: seeded(7) })
  const counts = new Map<string, number>()
  for (let i = 0; i < 20_000; i++) {
    const s = plan(route('app/web', request())).backend.service
    counts.set(s, (counts.get(s) ?? 0) + 1)
  }
  t.ok(Math.abs((counts.get('app/web-v2') ?? 0) / 20_000 - 0.1) < 0.01, `v2 share ${counts.get('app/web-v2')}`)
  t.equal(counts.get('app/shadow'), undefined)
  const zero = setup(httpRoute([{ backendRefs: [{ name: 'web', port: 80, weight: 0 }] }]))
  t.match(zero.route('app/web', request()), { kind: 'abort', httpStatus: 500 }, 'only weight 0: 500')
})

t.test('redirect Location as Gateway API builds it', async (t) => {
  const cases: Array<[NonNullable<NonNullable<HTTPRouteSpec['rules']>[number]['filters']>[number]['requestRedirect'], string, string, number]> = [
    [{ hostname: 'example.org' }, '/a?x=1', 'http://example.org/a?x=1', 302],
    [{ scheme: 'https', statusCode: 301 }, '/a', 'https://web/a', 301],
    [{ port: 8080 }, '/a', 'http://web:8080/a', 302],
    [{ scheme: 'https', port: 443 }, '/a', 'https://web/a', 302],
    [{ path: { type: 'ReplaceFullPath', replaceFullPath: '/new' } }, '/prefix/old', 'http://web/new', 302],
    [{ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } }, '/prefix/old', 'http://web/v2/old', 302],
    [{ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } }, '/prefix', 'http://web/', 302]
  ]
  for (const [filter, path, location, status] of cases) {
    const { route } = setup(httpRoute([{ matches: [{ path: { type: 'PathPrefix', value: '/prefix' } }, { path: { type: 'PathPrefix', value: '/a' } }], filters: [{ type: 'RequestRedirect', requestRedirect: filter }] }]))
    const [p, q] = path.split('?')
    t.match(route('app/web', request({ path: p, query: q ?? '', host: 'web:80' })), { kind: 'redirect', location, status }, JSON.stringify(filter))
  }
  const { route } = setup(httpRoute([{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'x' } }] }]))
  t.match(route('app/web', request({ path: '/', host: 'web.app.svc.cluster.local:80' })), { location: 'http://x/' }, 'the Service port (80) is the scheme\'s: left out')
})

t.test('URLRewrite: ReplacePrefixMatch on whole segments; hostname', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ['/foo', '/xyz', '/foo/bar', '/xyz/bar'],
    ['/foo', '/xyz/', '/foo/bar', '/xyz/bar'],
    ['/foo/', '/xyz', '/foo/bar', '/xyz/bar'],
    ['/foo', '/xyz', '/foo', '/xyz'],
    ['/foo', '/xyz', '/foo/', '/xyz/'],
    ['/foo', '', '/foo', '/'],
    ['/foo', '', '/foo/bar', '/bar'],
    ['/foo', '/', '/foo/bar', '/bar'],
    ['/', '/xyz', '/foo/bar', '/xyz/foo/bar']
  ]
  for (const [prefix, replace, path, want] of cases) {
    const { route } = setup(httpRoute([{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'h', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: replace } } }], backendRefs: [{ name: 'web', port: 80 }] }]))
    const p = plan(route('app/web', request({ path, query: 'q=1' })))
    t.equal(p.path, `${want}?q=1`, `${prefix} → ${replace} on ${path}`)
    t.equal(p.authority, 'h')
  }
})

t.test('VirtualService: fault abort and delay at their percentages (±1 point over 20,000)', async (t) => {
  const { route } = setup({ virtualServices: [obj('app', 'vs', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }], fault: { abort: { httpStatus: 503, percentage: { value: 20 } }, delay: { fixedDelay: '100ms', percentage: { value: 30 } } } }] })] }, { random: seeded(11) })
  let aborted = 0
  let delayed = 0
  const answers = new Set<string>()
  const n = 20_000
  for (let i = 0; i < n; i++) {
    const r = route('app/web', request())
    if (r.kind === 'abort') { aborted++; answers.add(`${r.flag} ${r.httpStatus}`); continue }
    if (plan(r).delayMs === 100) delayed++
  }
  t.same([...answers], ['FI 503'])
  t.ok(Math.abs(aborted / n - 0.2) < 0.01, `aborted ${aborted}`)
  t.ok(Math.abs(delayed / (n - aborted) - 0.3) < 0.015, `delayed ${delayed} of ${n - aborted}`)
})

t.test('subsets: attempts go only to the subset\'s endpoints; tried endpoints avoided while another is eligible', async (t) => {
  const { route } = setup({
    virtualServices: [obj('app', 'vs', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }] })],
    destinationRules: [obj('app', 'dr', { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] })]
  })
  const p = plan(route('app/reviews', request()))
  const first = p.attempt([])
  if (typeof first === 'string') throw new Error(first)
  const second = p.attempt([first.target])
  if (typeof second === 'string') throw new Error(second)
  t.not(second.target.key, first.target.key, 'the retry goes to the other v2 endpoint')
  const third = p.attempt([first.target, second.target])
  t.not(typeof third, 'string', 'every endpoint tried: one of them again')
  const v1 = setup({}).entry('app/reviews').endpoints.find((e) => e.pod.labels.version === 'v1')
  for (const a of [first, second]) t.not(a.target.address.address, v1?.address)
})

t.test('limits: the retry budget decides retryDelay; pool overflow refuses UO; ejected endpoints are skipped; outcomes reported; describe() shows them', async (t) => {
  const reports: string[] = []
  let tokens = 1
  let deposits = 0
  let withdrawn = 0
  const budget: RetryBudget = { deposit: () => { deposits++ }, withdraw: () => { if (tokens-- <= 0) return null; withdrawn++; return 0 }, counts: () => ({ requests: deposits, retries: withdrawn, allowed: 1 }) }
  let inFlight = 0
  const pool: PoolGate = { acquireRequest: () => { if (inFlight >= 1) return false; inFlight++; return true }, releaseRequest: () => { inFlight-- }, acquireConnection: () => true, releaseConnection: () => {}, counts: () => ({ requests: inFlight, connections: 0 }) }
  let ejectedId = ''
  const outliers: OutlierTracker = { ejected: (id) => id === ejectedId, report: (id, result) => { reports.push(`${id} ${result}`) } }
  const keys: string[] = []
  const limits: NodeLimits = {
    budgetFor: (k) => { keys.push(`budget ${k}`); return budget },
    poolFor: (k, l) => { keys.push(`pool ${k} ${l.maxRequests}`); return pool },
    outliersFor: (k, o) => { keys.push(`outliers ${k} ${o.consecutive5xxErrors}`); return outliers }
  }
  const { router, route, entry } = setup({ destinationRules: [obj('app', 'dr', { host: 'web', trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1 } }, outlierDetection: { consecutive5xxErrors: 2 } } })] }, { limits })
  const [e1, e2] = entry('app/web').endpoints
  ejectedId = e1.id
  const p = plan(route('app/web', request()))
  t.equal(p.rule, null, 'a DestinationRule alone: no rule, the Service port is the backend')
  t.same(keys, ['budget app/web:80', 'pool app/web:80 1', 'outliers app/web:80 2'])
  t.equal(deposits, 1, 'the request earned its share of the budget')
  const a = p.attempt([])
  if (typeof a === 'string') throw new Error(a)
  t.equal(a.target.key, e2.id, 'the ejected endpoint is skipped')
  t.equal(a.connections?.gate, pool, 'the attempt\'s upstream connections are counted by the backend\'s gate')
  t.match(a.connections, { key: /^app\/web:80\//, limits: { maxRequests: 1 } })
  t.equal(p.attempt([]), 'UO', 'the one in-flight request fills the pool')
  t.match(router.describe(), [{ backend: 'app/web:80', ejected: [e1.id], budget: { requests: 1, retries: 0 }, pool: { requests: 1, connections: 0, limits: { maxRequests: 1 } } }], '/debug/config: the budget\'s window and the pool held now')
  a.end({ kind: 'response', status: 503, grpcStatus: null })
  a.end({ kind: 'response', status: 503, grpcStatus: null })
  t.same(reports, [`${e2.id} gateway_error`], 'reported once')
  t.equal(inFlight, 0)
  t.equal(p.retryDelay(), 0)
  t.equal(p.retryDelay(), null, 'the budget is exhausted')
  t.match(router.describe()[0], { budget: { requests: 1, retries: 1, allowed: 1 }, pool: { requests: 0 } }, 'the retry taken and the request released show')
  ejectedId = e2.id
  const only = plan(route('app/web', request())).attempt([])
  t.equal(typeof only === 'string' ? only : only.target.key, e1.id)
})

t.test('a consumer route: callers of its namespace go where it says', async (t) => {
  const { route } = setup({
    httpRoutes: [obj('client', 'mine', { parentRefs: [{ kind: 'Service', name: 'web', namespace: 'app' }], rules: [{ backendRefs: [{ name: 'web-v2', namespace: 'app', port: 80 }] }] })]
  })
  t.equal(plan(route('app/web', request(), 'client')).backend.service, 'app/web-v2')
  const other = plan(route('app/web', request(), 'app'))
  t.same([other.rule, other.backend.service], [null, 'app/web'], 'other callers: no rule, the Service itself')
})

t.test('mirrors are rolled per request and get a target; headers of rule and backend in that order', async (t) => {
  const { route } = setup(httpRoute([{
    filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow', port: 80 } } }, { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: '1' }] } }],
    backendRefs: [{ name: 'web', port: 80, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'b', value: '2' }] } }] }]
  }]))
  const p = plan(route('app/web', request()))
  t.same(p.mirrors.map((m) => m.service), ['app/shadow'])
  t.not(p.mirrorTarget(p.mirrors[0]), null)
  t.same(p.requestHeaders.map((h) => h.set), [[['a', '1']], [['b', '2']]])
})
