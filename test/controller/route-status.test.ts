import t from 'tap'
import { parse } from 'yaml'
import { PolicyStatusWriter, type StatusTarget } from '../../src/controller/policy-status'
import { FERRY_CONTROLLER_NAME, OVERRIDDEN_CONDITION, overriddenVirtualServices, routeParents, serviceOfHost } from '../../src/controller/route-status'
import { POLICY_COLLECTIONS } from '../../src/kubernetes/policy-objects'
import { admitDocuments } from '../../src/resources/admission'
import { captureLog } from './harness'
import { waitFor } from '../helpers/wait'

// The status the controller writes on routes (the writer and its patches, with the
// reports a real admission makes): Gateway API's Accepted / ResolvedRefs on each Service
// parent, other controllers' parents kept; a VirtualService overridden by a Gateway API
// route on the same Service says so.

const T0 = Date.parse('2026-12-01T10:00:00Z')
const collection = (kind: string): StatusTarget['collection'] => POLICY_COLLECTIONS.find((c) => c.kind === kind)!

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: prod, generation: 3 }
spec:
  parentRefs:
  - { kind: Service, name: reviews, port: 9080 }
  - { name: edge-gateway }
  rules:
  - backendRefs:
    - { name: reviews-v1, port: 9080 }
    - { group: multicluster.x-k8s.io, kind: ServiceImport, name: reviews-v2 }
`
const VS = (name: string, host: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: prod }
spec:
  hosts: [${host}]
  http:
  - route:
    - destination: { host: ${host} }
`

function snapshotOf (...texts: string[]): ReturnType<typeof admitDocuments> {
  return admitDocuments(texts.map((text, i) => ({ path: `kubernetes:${i}`, text })), { origin: 'test', generation: 1 })
}

t.test('a route: Accepted and ResolvedRefs on each Service parent, with Ferry as the controller', async (t) => {
  const s = snapshotOf(ROUTE.replace('  generation: 3', ''))
  const object = parse(ROUTE)
  object.status = { parents: [{ parentRef: { name: 'edge-gateway' }, controllerName: 'example.com/gateway', conditions: [{ type: 'Accepted', status: 'True' }] }] }
  const patches: Array<{ name: string, status: any }> = []
  const { log } = captureLog()
  const writer = new PolicyStatusWriter({ patch: async (_c, _ns, name, status) => { patches.push({ name, status }) }, log, now: () => T0 })
  writer.update([{ collection: collection('HTTPRoute'), object, report: s.objects[0] }])
  await waitFor(() => patches.length === 1, { what: 'the status patch' })
  const parents = patches[0].status.parents
  t.same(parents[0], object.status.parents[0], 'the gateway\'s controller keeps its entry')
  t.equal(parents.length, 2, 'one entry for the Service parent; none for the Gateway, which is not Ferry\'s')
  t.match(parents[1], {
    parentRef: { kind: 'Service', name: 'reviews', port: 9080 },
    controllerName: FERRY_CONTROLLER_NAME,
    conditions: [
      { type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 3, lastTransitionTime: '2026-12-01T10:00:00Z' },
      { type: 'ResolvedRefs', status: 'False', reason: 'InvalidKind', message: /ServiceImport\.multicluster\.x-k8s\.io reviews-v2/ }
    ]
  })

  // Written again only when it changes.
  object.status = patches[0].status
  writer.update([{ collection: collection('HTTPRoute'), object, report: s.objects[0] }])
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(patches.length, 1, 'the same status: no patch')

  const refused = snapshotOf(ROUTE.replace('port: 9080 }\n  - { name', 'port: 9080 }\n  - { name: x, weight: 1 }\n  - { name'))
  writer.update([{ collection: collection('HTTPRoute'), object, report: refused.objects[0] }])
  await waitFor(() => patches.length === 2, { what: 'the refusal\'s patch' })
  t.match(patches[1].status.parents[1].conditions[0], { type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: /spec\.parentRefs\[1\]\.weight: unknown field.*nothing of it is in force/ })
})

t.test('routeParents: none for a route with no Service parent', async (t) => {
  const r = snapshotOf(ROUTE).objects[0]
  t.same(routeParents({ spec: { parentRefs: [{ name: 'gw' }] } }, r, T0), [])
})

t.test('a VirtualService on a Service a Gateway API route attaches to is overridden, and its status says so', async (t) => {
  t.equal(serviceOfHost('reviews', 'prod'), 'prod/reviews')
  t.equal(serviceOfHost('reviews.prod', 'x'), 'prod/reviews')
  t.equal(serviceOfHost('reviews.prod.svc.cluster.local', 'x'), 'prod/reviews')
  t.equal(serviceOfHost('*.example.com', 'x'), null)
  t.equal(serviceOfHost('api.example.com', 'x'), null)

  const s = snapshotOf(ROUTE, VS('reviews', 'reviews.prod.svc.cluster.local'), VS('ratings', 'ratings'))
  const overridden = overriddenVirtualServices(s)
  t.same([...overridden.keys()], ['prod/reviews'], 'ratings has no Gateway API route')
  t.match(overridden.get('prod/reviews'), { services: ['prod/reviews'], message: /overridden on Service prod\/reviews by HTTPRoute prod\/reviews/ })

  const patches: Array<{ name: string, status: any }> = []
  const { log } = captureLog()
  const writer = new PolicyStatusWriter({ patch: async (_c, _ns, name, status) => { patches.push({ name, status }) }, log, now: () => T0 })
  const report = (o: string): StatusTarget['report'] => s.objects.find((r) => r.object === o)
  writer.update([
    { collection: collection('VirtualService'), object: parse(VS('reviews', 'reviews.prod.svc.cluster.local')), report: report('VirtualService prod/reviews'), overridden: overridden.get('prod/reviews') },
    { collection: collection('VirtualService'), object: parse(VS('ratings', 'ratings')), report: report('VirtualService prod/ratings') }
  ])
  await waitFor(() => patches.length === 2, { what: 'both patches' })
  const cond = (name: string): any => patches.find((p) => p.name === name)?.status.conditions.find((c: any) => c.type === OVERRIDDEN_CONDITION)
  t.match(cond('reviews'), { status: 'True', reason: 'OverriddenByRoute', message: /HTTPRoute prod\/reviews/ })
  t.match(cond('ratings'), { status: 'False', reason: 'NotOverridden' })
  t.match(patches.find((p) => p.name === 'reviews')?.status.conditions[0], { type: 'FerryAccepted', status: 'True' })
})

t.test('a VirtualService overridden by a GRPCRoute: its message says its retries still apply and the rest does not', async (t) => {
  const GRPC = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greet, namespace: prod }
spec:
  parentRefs:
  - { kind: Service, name: greet, port: 50051 }
  rules:
  - backendRefs:
    - { name: greet, port: 50051 }
`
  const retrying = (attempts: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greet, namespace: prod }
spec:
  hosts: [greet]
  http:
  - retries: { attempts: ${attempts}, retryOn: unavailable }
    route:
    - destination: { host: greet }
`
  const lends = overriddenVirtualServices(snapshotOf(GRPC, retrying(3))).get('prod/greet')
  t.match(lends, { services: ['prod/greet'], message: /by GRPCRoute prod\/greet: .*only its retries \(http\[\]\.retries\) still apply.*the rest does not apply/ })
  t.match(overriddenVirtualServices(snapshotOf(GRPC, retrying(0))).get('prod/greet')?.message, /it wins and this VirtualService does not apply$/, 'attempts 0 lends nothing')
  t.match(overriddenVirtualServices(snapshotOf(GRPC, VS('greet', 'greet'))).get('prod/greet')?.message, /it wins and this VirtualService does not apply$/, 'no retries: nothing lent')
  t.match(overriddenVirtualServices(snapshotOf(ROUTE, retrying(3).replace(/greet/g, 'reviews'))).get('prod/reviews')?.message, /it wins and this VirtualService does not apply$/, 'an HTTPRoute borrows nothing')
})
