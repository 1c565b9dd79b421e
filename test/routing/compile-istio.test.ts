import t from 'tap'
import type { DestinationRuleSpec, VirtualServiceSpec } from '../../src/routing/api-types'
import { overriddenVirtualServices, RoutingTable } from '../../src/routing/routing-table'
import { cluster, obj, service } from './fixture'

// VirtualServices and DestinationRules: hosts naming Services, rules in the order
// written, destinations to subsets, traffic policies layered as Istio does, and the
// Gateway API route winning over a VirtualService on the same Service.

const reviews = (): ReturnType<typeof service> => service('bookinfo', 'reviews', [9080])
const dr: DestinationRuleSpec = {
  host: 'reviews',
  trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' }, outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: '10s' } },
  subsets: [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }
  ]
}

t.test('hosts: short name, name.namespace, FQDN with the cluster domain; other names none', async (t) => {
  const c = cluster([reviews()])
  for (const host of ['reviews', 'reviews.bookinfo', 'reviews.bookinfo.svc', 'reviews.bookinfo.svc.cluster.local']) {
    const table = RoutingTable.build(c, { virtualServices: [obj('bookinfo', 'vs', { hosts: [host], http: [{ route: [{ destination: { host } }] }] })] })
    t.equal(table.routesFor('bookinfo/reviews', 9080, 'any')?.kind, 'VirtualService', host)
  }
  const table = RoutingTable.build(c, { virtualServices: [obj('bookinfo', 'vs', { hosts: ['reviews.bookinfo.svc.other.domain', '*.bookinfo'], http: [{ route: [{ destination: { host: 'reviews' } }] }] })] })
  t.equal(table.routesFor('bookinfo/reviews', 9080, 'any'), null)
  t.same(table.problems().get('VirtualService bookinfo/vs'), ['host reviews.bookinfo.svc.other.domain names no Service', 'host *.bookinfo names no Service'])
  const short = RoutingTable.build(c, { virtualServices: [obj('other', 'vs', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews.bookinfo' } }] }] })] })
  t.equal(short.routesFor('bookinfo/reviews', 9080, 'any'), null, 'a short name is relative to the VirtualService\'s namespace')
})

t.test('rules in the order written; destinations to subsets with weights; headers, fault, retries, timeout, mirror', async (t) => {
  const c = cluster([reviews(), service('bookinfo', 'shadow', [9080])])
  const vs: VirtualServiceSpec = {
    hosts: ['reviews'],
    http: [
      { name: 'jason', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
      { match: [{ uri: { prefix: '/api' } }, { uri: { exact: '/health' } }], route: [{ destination: { host: 'reviews', subset: 'v1' } }], fault: { abort: { httpStatus: 503, percentage: { value: 10 } }, delay: { fixedDelay: '2s', percentage: { value: 5 } } } },
      {
        route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 90 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 10, headers: { request: { set: { 'X-Canary': 'yes' } } } }],
        retries: { attempts: 3, perTryTimeout: '250ms', retryOn: '5xx,reset,unavailable,418' },
        timeout: '1s',
        mirror: { host: 'shadow' },
        mirrorPercentage: { value: 50 },
        headers: { response: { remove: ['X-Internal'] } }
      }
    ]
  }
  const table = RoutingTable.build(c, { virtualServices: [obj('bookinfo', 'vs', vs)], destinationRules: [obj('bookinfo', 'dr', dr)] })
  const r = table.routesFor('bookinfo/reviews', 9080, 'productpage')
  t.same(r?.entries.map((e) => [e.rule.source.rule, e.match?.path ?? null]), [[0, null], [1, { type: 'Prefix', value: '/api' }], [1, { type: 'Exact', value: '/health' }], [2, null]])
  t.same(r?.entries[0].match?.headers, [{ name: 'end-user', match: { type: 'Exact', value: 'jason' }, invert: false }])
  t.same(r?.entries[0].rule.backends[0].backend, { service: 'bookinfo/reviews', port: 9080, subset: { name: 'v2', labels: { version: 'v2' } } })
  t.same(r?.entries[1].rule.fault, { delay: { percent: 5, ms: 2000 }, abort: { percent: 10, httpStatus: 503, grpcStatus: null } })
  const last = r?.entries[3].rule
  t.same(last?.backends.map((b) => [b.backend.subset?.name, b.weight]), [['v1', 90], ['v2', 10]])
  t.same(last?.backends[1].requestHeaders?.set, [['x-canary', 'yes']])
  t.same(last?.responseHeaders?.remove, ['x-internal'])
  t.equal(last?.timeoutMs, 1000)
  t.equal(last?.retry?.attempts, 3)
  t.equal(last?.retry?.perTryTimeoutMs, 250)
  t.same(last?.retry?.on, { connectFailure: false, reset: true, serverError: true, gatewayError: false, retriable4xx: false, statuses: [418], grpcStatuses: [14] })
  t.same(last?.mirrors, [{ backend: { service: 'bookinfo/shadow', port: 9080, subset: null }, percent: 50 }])
  t.equal(r?.entries[0].rule.retry?.attempts, 2, 'a rule without retries gets Istio\'s default (2 attempts)')
})

t.test('a subset no DestinationRule defines is left out and reported', async (t) => {
  const c = cluster([reviews()])
  const table = RoutingTable.build(c, { virtualServices: [obj('bookinfo', 'vs', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v9' } }] }] })], destinationRules: [obj('bookinfo', 'dr', dr)] })
  t.same(table.routesFor('bookinfo/reviews', 9080, 'x')?.entries[0].rule.backends, [])
  t.match(table.problems().get('VirtualService bookinfo/vs'), [/subset v9/])
})

t.test('DestinationRule policies: the subset\'s over the rule\'s, field by field; port-level settings over both levels they sit in', async (t) => {
  const c = cluster([reviews()])
  const spec: DestinationRuleSpec = {
    ...dr,
    trafficPolicy: { ...dr.trafficPolicy, portLevelSettings: [{ port: { number: 9080 }, connectionPool: { tcp: { maxConnections: 7 }, http: { http1MaxPendingRequests: 3, http2MaxRequests: 20, maxRequestsPerConnection: 5 } } }] }
  }
  const table = RoutingTable.build(c, { destinationRules: [obj('bookinfo', 'dr', spec)] })
  t.ok(table.hasRouting('bookinfo/reviews', 9080), 'a DestinationRule alone gives a port routing (its policy)')
  t.equal(table.routesFor('bookinfo/reviews', 9080, 'x'), null)
  const base = table.policyFor({ service: 'bookinfo/reviews', port: 9080, subset: null })
  t.same(base.loadBalancer, { type: 'LEAST_REQUEST' })
  t.equal(base.connectionPool?.maxConnections, 7)
  t.equal(base.connectionPool?.maxPendingRequests, 3)
  t.same(base.outlierDetection, { consecutive5xxErrors: 3, consecutiveGatewayErrors: null, consecutiveLocalOriginFailures: null, intervalMs: 10000, baseEjectionTimeMs: 10000, maxEjectionPercent: 10, minHealthPercent: 0 })
  const v2 = table.policyFor({ service: 'bookinfo/reviews', port: 9080, subset: { name: 'v2', labels: { version: 'v2' } } })
  t.same(v2.loadBalancer, { type: 'CONSISTENT_HASH', key: { header: 'x-user' } })
  t.equal(v2.outlierDetection?.consecutive5xxErrors, 3, 'fields the subset does not set come from the rule')
  t.equal(v2.source, 'DestinationRule bookinfo/dr subset v2')
  t.same(table.policyFor({ service: 'bookinfo/other', port: 1, subset: null }).loadBalancer, { type: 'P2C_PEAK_EWMA' }, 'no DestinationRule: P2C over peak-EWMA')
})

t.test('an HTTPRoute on the same Service wins; the VirtualService is reported overridden', async (t) => {
  const c = cluster([reviews(), service('bookinfo', 'ratings', [9080])])
  const config = {
    httpRoutes: [obj('bookinfo', 'hr', { parentRefs: [{ kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] })],
    virtualServices: [
      obj('bookinfo', 'vs', { hosts: ['reviews', 'ratings'], http: [{ route: [{ destination: { host: 'ratings' } }] }] }),
      obj('bookinfo', 'alone', { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'ratings' } }] }] })
    ]
  }
  const table = RoutingTable.build(c, config)
  t.equal(table.routesFor('bookinfo/reviews', 9080, 'x')?.kind, 'HTTPRoute')
  t.equal(table.routesFor('bookinfo/ratings', 9080, 'x')?.kind, 'VirtualService')
  const over = overriddenVirtualServices(c, config)
  t.same(over.map((o) => [o.ref, o.services]), [['bookinfo/vs', ['bookinfo/reviews']]])
  t.match(over[0].message, /HTTPRoute.*Service bookinfo\/reviews/)
})
