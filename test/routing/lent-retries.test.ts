import t from 'tap'
import { ServiceIndex, type Endpoint, type ServicePortEntry } from '../../src/discovery/service-index'
import type { UpstreamTarget } from '../../src/http/context'
import type { GRPCRouteSpec, VirtualServiceSpec } from '../../src/routing/api-types'
import { checkRoute } from '../../src/routing/check'
import type { RequestPlan } from '../../src/routing/model'
import { Router } from '../../src/routing/router'
import { overriddenVirtualServices, type RouteConfig, RoutingTable } from '../../src/routing/routing-table'
import { cluster, obj, pod, request, service, TestRoundRobin } from './fixture'

// A VirtualService lends its retry policy — and nothing else — to the GRPCRoute that
// overrides it on a Service port (src/routing/lent-retries.ts): the first of its
// (rule, match) entries whose match holds for the gRPC request decides; producer
// VirtualServices lend to every caller, others to callers in their own namespace only.

const c = cluster([service('app', 'greet'), service('app', 'greet-v2'), service('app', 'elsewhere')], [
  pod('app', 'greet-1', { app: 'greet' }), pod('app', 'greet-v2-1', { app: 'greet-v2' }), pod('app', 'elsewhere-1', { app: 'elsewhere' })
])
const index = ServiceIndex.build(c)
const entry = [...index.entries()].find((e) => e.service.name === 'greet') as ServicePortEntry
const targetOf = (e: Endpoint): UpstreamTarget => ({ key: e.id, address: { address: e.address, port: e.port, family: e.family }, record: null as never, local: null, dial: async () => { throw new Error('not dialed') } })

const GRPC_ROUTE = obj<GRPCRouteSpec>('app', 'greet', {
  parentRefs: [{ kind: 'Service', name: 'greet', port: 80 }],
  rules: [
    { matches: [{ method: { service: 'pkg.Greeter', method: 'Write' } }], backendRefs: [{ name: 'greet', port: 80 }] },
    { matches: [{ method: { service: 'pkg.Greeter' } }], backendRefs: [{ name: 'greet-v2', port: 80 }] },
    { backendRefs: [{ name: 'greet', port: 80 }] }
  ]
})
const RETRIES = { attempts: 4, perTryTimeout: '2s', retryOn: 'unavailable,resource-exhausted' }
/** Rule 0 keeps writes unretried; rule 1 retries the rest and says much else that must stay overridden. */
const vs = (namespace: string, name: string, host = 'greet'): ReturnType<typeof obj<VirtualServiceSpec>> => obj<VirtualServiceSpec>(namespace, name, {
  hosts: [host],
  http: [
    { match: [{ uri: { exact: '/pkg.Greeter/Write' } }], route: [{ destination: { host: 'greet.app' } }] },
    {
      match: [{ uri: { prefix: '/pkg.Greeter/' } }],
      retries: RETRIES,
      route: [{ destination: { host: 'elsewhere.app' } }],
      timeout: '50ms',
      fault: { abort: { percentage: { value: 100 }, grpcStatus: 'PERMISSION_DENIED' } },
      headers: { request: { set: { 'x-from-vs': 'yes' } } }
    }
  ]
}, '2026-06-01T00:00:00Z')

function routeOf (config: Partial<RouteConfig>, path: string, caller = 'app'): RequestPlan {
  const router = new Router({ balancers: () => new TestRoundRobin<Endpoint>(), limits: null, random: () => 0 })
  router.update(RoutingTable.build(c, config), index)
  const fn = router.forConnection(entry, { namespace: caller, labels: {}, ip: '10.0.0.9' }, targetOf)
  if (fn === null) throw new Error('no routing')
  const r = fn(request({ method: 'POST', path, grpc: true, headers: { 'content-type': 'application/grpc' } }))
  if (r.kind !== 'forward') throw new Error(`expected forward, got ${r.kind}`)
  return r.plan
}

t.test('without a VirtualService a GRPCRoute rule retries nothing', async (t) => {
  t.equal(routeOf({ grpcRoutes: [GRPC_ROUTE] }, '/pkg.Greeter/Read').retry, null)
})

t.test('the matching VirtualService rule lends its retries (gRPC statuses, attempts, per-try timeout) and nothing else', async (t) => {
  const p = routeOf({ grpcRoutes: [GRPC_ROUTE], virtualServices: [vs('app', 'greet')] }, '/pkg.Greeter/Read')
  t.match(p.retry, { attempts: 4, perTryTimeoutMs: 2000, on: { grpcStatuses: [14, 8], serverError: false } })
  t.equal(p.perTryTimeoutMs, 2000, 'the lent per-try timeout bounds each attempt')
  t.equal(p.backend.service, 'app/greet-v2', 'the GRPCRoute picks the backend, not the VirtualService')
  t.equal(p.rule?.name, 'GRPCRoute app/greet rule 1')
  t.equal(p.timeoutMs, null, 'no timeout from the VirtualService')
  t.same(p.requestHeaders, [], 'no header edits from the VirtualService')
  t.equal(p.delayMs, 0)
})

t.test('the first VirtualService entry whose match holds decides: a rule without retries lends none, a later rule does not stand in', async (t) => {
  const config = { grpcRoutes: [GRPC_ROUTE], virtualServices: [vs('app', 'greet')] }
  t.equal(routeOf(config, '/pkg.Greeter/Write').retry, null, 'rule 0 (writes) sets no retries: Istio\'s default is not lent')
  t.equal(routeOf(config, '/other.Svc/Read').retry, null, 'no VirtualService match holds: no retry')
  const off = obj<VirtualServiceSpec>('app', 'off', { hosts: ['greet'], http: [{ retries: { attempts: 0 }, route: [{ destination: { host: 'greet' } }] }] }, '2026-01-01T00:00:00Z')
  t.equal(routeOf({ grpcRoutes: [GRPC_ROUTE], virtualServices: [off, vs('app', 'greet')] }, '/pkg.Greeter/Read').retry, null, 'attempts 0 of the older VirtualService decides: none')
})

t.test('a VirtualService outside the Service\'s namespace lends to callers in its own namespace only, before the producer\'s', async (t) => {
  const foreign = vs('client', 'greet', 'greet.app')
  const config = { grpcRoutes: [GRPC_ROUTE], virtualServices: [foreign] }
  t.equal(routeOf(config, '/pkg.Greeter/Read', 'app').retry, null, 'callers in app: nothing lent by client\'s VirtualService')
  t.equal(routeOf(config, '/pkg.Greeter/Read', 'other').retry, null, 'callers in a third namespace: nothing')
  t.match(routeOf(config, '/pkg.Greeter/Read', 'client').retry, { attempts: 4 }, 'callers in client: lent')
  const producer = obj<VirtualServiceSpec>('app', 'producer', { hosts: ['greet'], http: [{ retries: { attempts: 1, retryOn: 'cancelled' } }] })
  const both = { grpcRoutes: [GRPC_ROUTE], virtualServices: [producer, foreign] }
  t.match(routeOf(both, '/pkg.Greeter/Read', 'client').retry, { attempts: 4 }, 'the caller\'s own VirtualService first')
  t.match(routeOf(both, '/pkg.Greeter/Read', 'app').retry, { attempts: 1, on: { grpcStatuses: [1] } }, 'the producer\'s for everyone else')
})

t.test('HTTPRoute rules get nothing lent (they have a retry field of their own)', async (t) => {
  const hr = obj('app', 'h', { parentRefs: [{ kind: 'Service', name: 'greet' }], rules: [{ backendRefs: [{ name: 'greet', port: 80 }] }] })
  t.equal(routeOf({ httpRoutes: [hr], virtualServices: [vs('app', 'greet')] }, '/pkg.Greeter/Read').retry, null)
})

t.test('status and route check say the retries apply while the rest is overridden', async (t) => {
  const config = { grpcRoutes: [GRPC_ROUTE], virtualServices: [vs('app', 'greet')] }
  const [o] = overriddenVirtualServices(c, config)
  t.equal(o.ref, 'app/greet')
  t.match(o.message, /only its retries \(http\[\]\.retries\) still apply/)
  const plain = obj<VirtualServiceSpec>('app', 'plain', { hosts: ['greet'], http: [{ route: [{ destination: { host: 'greet' } }] }] })
  t.match(overriddenVirtualServices(c, { grpcRoutes: [GRPC_ROUTE], virtualServices: [plain] })[0].message, /this VirtualService does not apply there/)

  const check = (path: string): ReturnType<typeof checkRoute> => checkRoute(RoutingTable.build(c, config), c, { from: 'app/client', to: 'app/greet:80', path, method: 'POST', headers: { 'content-type': 'application/grpc' } })
  t.match(check('/pkg.Greeter/Read'), { rule: 'GRPCRoute app/greet rule 1', retry: '4 retries on grpc 14, grpc 8 (from VirtualService app/greet rule 1, lent to the GRPCRoute; within the node\'s retry budget)', fault: null })
  t.match(check('/pkg.Greeter/Write'), { rule: 'GRPCRoute app/greet rule 0', retry: 'none (from VirtualService app/greet rule 0, lent to the GRPCRoute; it sets no retries)' })
})
