import t from 'tap'
import { checkRoute, routeCheckText } from '../../src/routing/check'
import { RoutingTable } from '../../src/routing/routing-table'
import { L7Table } from '../../src/l7/table'
import { cluster, obj, pod, service } from './fixture'

// `ferry route check`'s explanation, and a route making its Service port L7.

const c = cluster([service('app', 'web'), service('app', 'web-v2'), service('app', 'plain')], [pod('app', 'client', { app: 'client' }), pod('app', 'web-1', { app: 'web' }), pod('app', 'v2-1', { app: 'web-v2' })])
const table = RoutingTable.build(c, {
  httpRoutes: [obj('app', 'canary', {
    parentRefs: [{ kind: 'Service', name: 'web' }],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }] },
      { matches: [{ headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: [{ name: 'web-v2', port: 80 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: 10 }], timeouts: { request: '500ms' } }
    ]
  })]
})

t.test('which rule and backend, and why', async (t) => {
  const split = checkRoute(table, c, { from: 'app/client', to: 'app/web:80', path: '/x' })
  t.equal(split.outcome, 'route')
  t.equal(split.rule, 'HTTPRoute app/canary rule 2')
  t.same(split.skipped, ['HTTPRoute app/canary rule 0: path PathPrefix /old', 'HTTPRoute app/canary rule 1: path PathPrefix /, header x-canary Exact yes'], 'the longer prefix first, then more headers')
  t.same(split.backends.map((b) => [b.backend, b.chance, b.endpoints]), [['app/web:80', 0.9, 1], ['app/web-v2:80', 0.1, 1]])
  t.match(routeCheckText(split), /backend: app\/web:80 weight 90 \(90\.0%\)/)
  const canary = checkRoute(table, c, { from: 'app/client', to: 'app/web', path: '/x', headers: { 'x-canary': 'yes' } })
  t.equal(canary.rule, 'HTTPRoute app/canary rule 1')
  const redirect = checkRoute(table, c, { from: 'app/client', to: 'app/web', path: '/old/page?a=1' })
  t.same(redirect.redirect, { status: 302, location: 'http://web.app.svc.cluster.local/new/page?a=1' })
  const plain = checkRoute(table, c, { from: 'app/client', to: 'app/plain' })
  t.equal(plain.outcome, 'none')
  t.throws(() => checkRoute(table, c, { from: 'app/client', to: 'app/missing' }), /no Service app\/missing/)
})

t.test('a route makes its Service port L7: http1 for an HTTPRoute on an undeclared port, grpc for a GRPCRoute', async (t) => {
  const undeclared = { ...service('app', 'web'), ports: [{ name: null, port: 80, targetPort: 8080, protocol: 'TCP' as const, appProtocol: null }] }
  const g = { ...service('app', 'grpc'), ports: [{ name: null, port: 50051, targetPort: 50051, protocol: 'TCP' as const, appProtocol: null }] }
  const cl = cluster([undeclared, g, service('app', 'web-v2')])
  const rt = RoutingTable.build(cl, {
    httpRoutes: [obj('app', 'r', { parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] })],
    grpcRoutes: [obj('app', 'g', { parentRefs: [{ kind: 'Service', name: 'grpc' }], rules: [{ backendRefs: [{ name: 'grpc', port: 50051 }] }] })]
  })
  const l7 = L7Table.build(cl, { routeOf: (s, p) => rt.engagement(`${s.namespace}/${s.name}`, p.port) })
  const web = l7.forService(undeclared, undeclared.ports[0])
  t.same([web.engaged, web.protocol], [true, 'http1'])
  t.match(web.reason, /route HTTPRoute app\/r targets it/)
  const grpc = l7.forService(g, g.ports[0])
  t.same([grpc.engaged, grpc.protocol], [true, 'grpc'])
  const none = L7Table.build(cl).forService(undeclared, undeclared.ports[0])
  t.equal(none.engaged, false, 'without the route: not engaged')
})
