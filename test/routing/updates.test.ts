import t from 'tap'
import { ServiceIndex, type Endpoint } from '../../src/discovery/service-index'
import type { UpstreamTarget } from '../../src/http/context'
import type { HTTPRouteSpec } from '../../src/routing/api-types'
import type { RequestPlan } from '../../src/routing/model'
import { roundRobinRequests } from '../../src/routing/round-robin-requests'
import { Router } from '../../src/routing/router'
import { RoutingTable } from '../../src/routing/routing-table'
import { cluster, obj, pod, request, seeded, service } from './fixture'

// New snapshots apply to the next request of a live connection: new weights, new
// endpoints, a new DestinationRule policy (a new balancer); unchanged backends keep their
// balancer (and its latency estimates).

const targetOf = (e: Endpoint): UpstreamTarget => ({ key: e.id, address: { address: e.address, port: e.port, family: e.family }, record: null as never, local: null, dial: async () => { throw new Error('not dialed') } })
const canary = (v1: number, v2: number): HTTPRouteSpec => ({ parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'web', port: 80, weight: v1 }, { name: 'web-v2', port: 80, weight: v2 }] }] })

t.test('weights, endpoints and policies change under a live connection', async (t) => {
  const web = service('app', 'web')
  const v2 = service('app', 'web-v2')
  const pods = [pod('app', 'w1', { app: 'web' }), pod('app', 'v2a', { app: 'web-v2' })]
  let balancers = 0
  const router = new Router({ balancers: () => { balancers++; return roundRobinRequests<Endpoint>() }, limits: null, random: seeded(3) })
  const c1 = cluster([web, v2], pods)
  const index1 = ServiceIndex.build(c1)
  router.update(RoutingTable.build(c1, { httpRoutes: [obj('app', 'r', canary(100, 0))] }), index1)
  const entry = [...index1.entries()].find((e) => e.service.name === 'web')
  if (entry === undefined) throw new Error('no entry')
  const fn = router.forConnection(entry, { namespace: 'app', labels: {}, ip: '' }, targetOf)
  if (fn === null) throw new Error('no routing')
  const backendOf = (): string => { const r = fn(request()); if (r.kind !== 'forward') throw new Error(r.kind); return r.plan.backend.service }
  t.equal(backendOf(), 'app/web')
  router.update(RoutingTable.build(c1, { httpRoutes: [obj('app', 'r', canary(0, 100))] }), index1)
  t.equal(backendOf(), 'app/web-v2', 'the next request of the same connection takes the new weights')
  const made = balancers
  const c2 = cluster([web, v2], [...pods, pod('app', 'v2b', { app: 'web-v2' })])
  const index2 = ServiceIndex.build(c2)
  router.update(RoutingTable.build(c2, { httpRoutes: [obj('app', 'r', canary(0, 100))] }), index2)
  const plan = (): RequestPlan => { const r = fn(request()); if (r.kind !== 'forward') throw new Error(r.kind); return r.plan }
  const seen = new Set<string>()
  for (let i = 0; i < 4; i++) { const a = plan().attempt([]); if (typeof a !== 'string') { seen.add(a.target.key); a.end({ kind: 'response', status: 200, grpcStatus: null }) } }
  t.equal(seen.size, 2, 'the new endpoint takes requests')
  t.equal(balancers, made, 'same policy: the balancer is kept')
  router.update(RoutingTable.build(c2, { httpRoutes: [obj('app', 'r', canary(0, 100))], destinationRules: [obj('app', 'dr', { host: 'web-v2', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } })] }), index2)
  t.equal(plan().backend.service, 'app/web-v2')
  t.equal(balancers, made + 1, 'a new policy: a new balancer')
})
