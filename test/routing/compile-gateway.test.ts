import t from 'tap'
import type { GRPCRouteSpec, HTTPRouteSpec } from '../../src/routing/api-types'
import { RoutingTable } from '../../src/routing/routing-table'
import { cluster, obj, service } from './fixture'

// Gateway API routes attached to Services (GAMMA): which entries a caller gets on a
// Service port, in the specification's precedence order; producer and consumer routes;
// what does not resolve.

const parent = (name: string, port?: number, namespace?: string): HTTPRouteSpec['parentRefs'] => [{ group: '', kind: 'Service', name, ...(port === undefined ? {} : { port }), ...(namespace === undefined ? {} : { namespace }) }]
const to = (name: string, port = 80, weight?: number): NonNullable<NonNullable<HTTPRouteSpec['rules']>[number]['backendRefs']>[number] => ({ name, port, ...(weight === undefined ? {} : { weight }) })

function order (table: RoutingTable, svc: string, port: number, caller: string): string[] {
  const r = table.routesFor(svc, port, caller)
  return r === null ? [] : r.entries.map((e) => `${e.rule.source.ref}#${e.rule.source.rule}`)
}

t.test('precedence: Exact > PathPrefix by length > RegularExpression; then method, headers, query parameters', async (t) => {
  const c = cluster([service('app', 'web'), service('app', 'v2')])
  const rules: NonNullable<HTTPRouteSpec['rules']> = [
    { matches: [{ path: { type: 'RegularExpression', value: '/a.*' } }], backendRefs: [to('web')] }, // 0
    { matches: [{ path: { type: 'PathPrefix', value: '/a' } }], backendRefs: [to('web')] }, // 1
    { matches: [{ path: { type: 'PathPrefix', value: '/a/b' } }], backendRefs: [to('web')] }, // 2
    { matches: [{ path: { type: 'Exact', value: '/a' } }], backendRefs: [to('web')] }, // 3
    { matches: [{ path: { type: 'PathPrefix', value: '/a' }, method: 'POST' }], backendRefs: [to('web')] }, // 4
    { matches: [{ path: { type: 'PathPrefix', value: '/a' }, headers: [{ name: 'x', value: '1' }] }], backendRefs: [to('web')] }, // 5
    { matches: [{ path: { type: 'PathPrefix', value: '/a' }, headers: [{ name: 'x', value: '1' }, { name: 'y', value: '2' }] }], backendRefs: [to('web')] }, // 6
    { matches: [{ path: { type: 'PathPrefix', value: '/a' }, queryParams: [{ name: 'q', value: '1' }] }], backendRefs: [to('web')] }, // 7
    { backendRefs: [to('web')] } // 8: PathPrefix "/"
  ]
  const table = RoutingTable.build(c, { httpRoutes: [obj('app', 'r', { parentRefs: parent('web'), rules })] })
  t.same(order(table, 'app/web', 80, 'app'), ['app/r#3', 'app/r#2', 'app/r#4', 'app/r#6', 'app/r#5', 'app/r#7', 'app/r#1', 'app/r#8', 'app/r#0'])
})

t.test('ties: the oldest route first, then namespace/name, then rule order', async (t) => {
  const c = cluster([service('app', 'web')])
  const spec = (n: number): HTTPRouteSpec => ({ parentRefs: parent('web'), rules: Array.from({ length: n }, () => ({ matches: [{ path: { type: 'PathPrefix' as const, value: '/x' } }], backendRefs: [to('web')] })) })
  const table = RoutingTable.build(c, {
    httpRoutes: [
      obj('app', 'b', spec(1), '2024-01-01T00:00:00Z'),
      obj('app', 'c', spec(2), '2023-01-01T00:00:00Z'),
      obj('app', 'a', spec(1), '2024-01-01T00:00:00Z')
    ]
  })
  t.same(order(table, 'app/web', 80, 'app'), ['app/c#0', 'app/c#1', 'app/a#0', 'app/b#0'])
})

t.test('a rule matches by any of its matches: each takes its own place in the order', async (t) => {
  const c = cluster([service('app', 'web')])
  const table = RoutingTable.build(c, {
    httpRoutes: [obj('app', 'r', {
      parentRefs: parent('web'),
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/short' } }, { path: { type: 'Exact', value: '/exact' } }], backendRefs: [to('web')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/much/longer' } }], backendRefs: [to('web')] }
      ]
    })]
  })
  const r = table.routesFor('app/web', 80, 'app')
  t.same(r?.entries.map((e) => e.match?.path), [{ type: 'Exact', value: '/exact' }, { type: 'PathPrefix', value: '/much/longer' }, { type: 'PathPrefix', value: '/short' }])
})

t.test('producer routes apply to every caller; a consumer route only to its namespace, before the producer\'s', async (t) => {
  const c = cluster([service('app', 'web'), service('app', 'web-v2')])
  const table = RoutingTable.build(c, {
    httpRoutes: [
      obj('app', 'producer', { parentRefs: parent('web'), rules: [{ matches: [{ path: { type: 'Exact', value: '/p' } }], backendRefs: [to('web')] }] }),
      obj('client', 'consumer', { parentRefs: parent('web', undefined, 'app'), rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web-v2', namespace: 'app', port: 80 }] }] })
    ]
  })
  t.same(order(table, 'app/web', 80, 'app'), ['app/producer#0'])
  t.same(order(table, 'app/web', 80, 'other'), ['app/producer#0'])
  t.same(order(table, 'app/web', 80, 'client'), ['client/consumer#0', 'app/producer#0'], 'the consumer route wins even over a more precise producer match')
  t.same(table.routesFor('app/web', 80, 'client')?.objects, ['HTTPRoute client/consumer', 'HTTPRoute app/producer'])
  t.equal(table.routesFor('app/web', 80, 'client')?.entries[0].rule.backends[0].backend.service, 'app/web-v2')
})

t.test('only consumer routes: other namespaces keep plain balancing', async (t) => {
  const c = cluster([service('app', 'web')])
  const table = RoutingTable.build(c, { httpRoutes: [obj('client', 'consumer', { parentRefs: parent('web', undefined, 'app'), rules: [{ backendRefs: [{ name: 'web', namespace: 'app', port: 80 }] }] })] })
  t.equal(table.routesFor('app/web', 80, 'app'), null)
  t.not(table.routesFor('app/web', 80, 'client'), null)
})

t.test('a parentRef without port attaches to every port; with a port, to that one', async (t) => {
  const c = cluster([service('app', 'web', [80, 8080]), service('app', 'api', [80, 8080])])
  const table = RoutingTable.build(c, {
    httpRoutes: [
      obj('app', 'all', { parentRefs: parent('web'), rules: [{ backendRefs: [to('web', 80)] }] }),
      obj('app', 'one', { parentRefs: parent('api', 8080), rules: [{ backendRefs: [to('api', 8080)] }] })
    ]
  })
  t.not(table.routesFor('app/web', 80, 'app'), null)
  t.not(table.routesFor('app/web', 8080, 'app'), null)
  t.equal(table.routesFor('app/api', 80, 'app'), null)
  t.not(table.routesFor('app/api', 8080, 'app'), null)
  t.ok(table.hasRouting('app/api', 8080))
  t.notOk(table.hasRouting('app/api', 80))
})

t.test('filters, weights, timeouts and retry compile to the rule', async (t) => {
  const c = cluster([service('app', 'web'), service('app', 'web-v2'), service('app', 'shadow')])
  const table = RoutingTable.build(c, {
    httpRoutes: [obj('app', 'r', {
      parentRefs: parent('web'),
      rules: [{
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: 'a' }], add: [{ name: 'X-Add', value: 'b' }], remove: ['X-Gone'] } },
          { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'X-Resp', value: 'c' }] } },
          { type: 'URLRewrite', urlRewrite: { hostname: 'other', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } } },
          { type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow', port: 80 }, percent: 25 } }
        ],
        backendRefs: [to('web', 80, 90), { ...to('web-v2', 80, 10), filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-version', value: 'v2' }] } }] }],
        timeouts: { request: '500ms', backendRequest: '200ms' },
        retry: { codes: [503], attempts: 3, backoff: '100ms' }
      }]
    })]
  })
  const rule = table.routesFor('app/web', 80, 'app')?.entries[0].rule
  t.same(rule?.requestHeaders, { set: [['x-set', 'a']], add: [['x-add', 'b']], remove: ['x-gone'] })
  t.same(rule?.responseHeaders?.add, [['x-resp', 'c']])
  t.same(rule?.rewrite, { hostname: 'other', path: { type: 'ReplacePrefixMatch', value: '/v2' } })
  t.same(rule?.mirrors, [{ backend: { service: 'app/shadow', port: 80, subset: null }, percent: 25 }])
  t.same(rule?.backends.map((b) => [b.backend.service, b.weight]), [['app/web', 90], ['app/web-v2', 10]])
  t.same(rule?.backends[1].requestHeaders?.set, [['x-version', 'v2']])
  t.equal(rule?.timeoutMs, 500)
  t.equal(rule?.backendTimeoutMs, 200)
  t.equal(rule?.retry?.attempts, 3)
  t.same(rule?.retry?.on.statuses, [503])
  t.equal(rule?.retry?.backoffBaseMs, 100)
  t.equal(rule?.name, 'HTTPRoute app/r rule 0')
})

t.test('unresolved references are left out and reported; a rule left without backends keeps its place', async (t) => {
  const c = cluster([service('app', 'web')])
  const table = RoutingTable.build(c, {
    httpRoutes: [
      obj('app', 'r', { parentRefs: parent('web'), rules: [{ backendRefs: [to('missing'), to('web', 9999)] }] }),
      obj('app', 'orphan', { parentRefs: parent('nothing'), rules: [{ backendRefs: [to('web')] }] })
    ]
  })
  t.same(table.routesFor('app/web', 80, 'app')?.entries[0].rule.backends, [])
  t.same(table.problems().get('HTTPRoute app/r'), ['backendRef Service app/missing does not exist', 'backendRef Service app/web has no port 9999'])
  t.same(table.problems().get('HTTPRoute app/orphan'), ['parentRef Service app/nothing does not exist'])
})

t.test('GRPCRoute: service and method matches ordered by their length, headers after', async (t) => {
  const c = cluster([service('app', 'grpc', [50051])])
  const spec: GRPCRouteSpec = {
    parentRefs: [{ kind: 'Service', name: 'grpc', port: 50051 }],
    rules: [
      { matches: [{ method: { service: 'echo.Echo' } }], backendRefs: [{ name: 'grpc', port: 50051 }] },
      { matches: [{ method: { service: 'echo.Echo', method: 'Say' } }], backendRefs: [{ name: 'grpc', port: 50051 }] },
      { matches: [{ headers: [{ name: 'X-Who', value: 'me' }] }], backendRefs: [{ name: 'grpc', port: 50051 }] }
    ]
  }
  const table = RoutingTable.build(c, { grpcRoutes: [obj('app', 'g', spec)] })
  const r = table.routesFor('app/grpc', 50051, 'app')
  t.equal(r?.kind, 'GRPCRoute')
  t.same(order(table, 'app/grpc', 50051, 'app'), ['app/g#1', 'app/g#0', 'app/g#2'])
  t.same(r?.entries[0].match?.grpc, { type: 'Exact', service: 'echo.Echo', method: 'Say' })
  t.equal(table.routeOf('app/grpc', 50051)?.kind, 'GRPCRoute')
})
