import t from 'tap'
import { compileMatch, grpcMatcher, MatchInput, pathMatcher } from '../../src/routing/match'
import type { RequestMatch } from '../../src/routing/model'
import { request } from './fixture'

// Matching as Gateway API and Istio define it: whole-segment prefixes, anchored regular
// expressions, header presence and absence, the first query value, gRPC methods.

const none: RequestMatch = { path: null, method: null, headers: [], query: [], grpc: null, authority: null, sourceLabels: null, sourceNamespace: null }
const caller = { namespace: 'app', labels: { app: 'client', version: 'v1' }, ip: '10.0.0.1' }
const holds = (m: Partial<RequestMatch>, r: Parameters<typeof request>[0], c = caller): boolean => compileMatch({ ...none, ...m })(new MatchInput(request(r), c))

t.test('PathPrefix matches whole segments; Istio prefix is a string prefix; regular expressions match the whole path', async (t) => {
  const prefix = pathMatcher({ type: 'PathPrefix', value: '/abc/' })
  t.same(['/abc', '/abc/', '/abc/def', '/abcd', '/ab'].map(prefix), [true, true, true, false, false])
  t.same(['/', '/x'].map(pathMatcher({ type: 'PathPrefix', value: '/' })), [true, true])
  t.same(['/abc', '/abcd'].map(pathMatcher({ type: 'Prefix', value: '/abc' })), [true, true])
  const re = pathMatcher({ type: 'RegularExpression', value: '/v[0-9]+' })
  t.same(['/v1', '/v12', '/v1/x', 'x/v1'].map(re), [true, true, false, false], 'anchored at both ends')
  t.same(['/a', '/a/', '/A'].map(pathMatcher({ type: 'Exact', value: '/a' })), [true, false, false])
})

t.test('headers: value, presence, absence (Istio withoutHeaders), pseudo-headers', async (t) => {
  t.ok(holds({ headers: [{ name: 'x-a', match: { type: 'Exact', value: '1' }, invert: false }] }, { headers: { 'X-A': '1' } }))
  t.notOk(holds({ headers: [{ name: 'x-a', match: { type: 'Exact', value: '1' }, invert: false }] }, { headers: { 'x-a': '11' } }))
  t.ok(holds({ headers: [{ name: 'x-a', match: null, invert: false }] }, { headers: { 'x-a': '' } }), '{} is presence')
  t.notOk(holds({ headers: [{ name: 'x-a', match: null, invert: true }] }, { headers: { 'x-a': 'v' } }), 'withoutHeaders {}: absent only')
  t.ok(holds({ headers: [{ name: 'x-a', match: { type: 'Prefix', value: 'ab' }, invert: true }] }, { headers: { 'x-a': 'zz' } }))
  t.ok(holds({ headers: [{ name: ':method', match: { type: 'RegularExpression', value: 'GET|HEAD' }, invert: false }] }, { method: 'HEAD' }))
})

t.test('query parameters: the first value counts, decoded; method; source labels and namespace', async (t) => {
  const q = { query: [{ name: 'v', match: { type: 'Exact' as const, value: 'a b' } }] }
  t.ok(holds(q, { query: 'v=a%20b&v=c' }))
  t.notOk(holds(q, { query: 'v=c&v=a%20b' }))
  t.notOk(holds(q, { query: 'V=a%20b' }), 'names are case-sensitive')
  t.notOk(holds({ method: 'POST' }, { method: 'GET' }))
  t.ok(holds({ sourceLabels: { app: 'client' }, sourceNamespace: 'app' }, {}))
  t.notOk(holds({ sourceLabels: { app: 'client', version: 'v2' } }, {}))
  t.notOk(holds({ sourceNamespace: 'other' }, {}))
})

t.test('gRPC: service and method, either left out; only gRPC requests', async (t) => {
  const both = grpcMatcher({ type: 'Exact', service: 'echo.Echo', method: 'Say' })
  t.same(['/echo.Echo/Say', '/echo.Echo/Shout', '/other.Echo/Say', '/echo.Echo'].map(both), [true, false, false, false])
  t.ok(grpcMatcher({ type: 'Exact', service: 'echo.Echo', method: null })('/echo.Echo/Anything'))
  t.ok(grpcMatcher({ type: 'RegularExpression', service: 'echo\\..*', method: 'S.*' })('/echo.Echo/Say'))
  const m = { grpc: { type: 'Exact' as const, service: 'echo.Echo', method: null } }
  t.ok(holds(m, { path: '/echo.Echo/Say', grpc: true }))
  t.notOk(holds(m, { path: '/echo.Echo/Say', grpc: false }))
})
