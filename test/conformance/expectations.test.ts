import t from 'tap'
import { backendOf, caseName, mismatch, weightMismatch, type Answer, type ExpectedCase } from './expectations'

// How an echo answer is judged against a conformance case, without a lab: the suite's
// rules (header values joined by ",", names case-insensitive, the answering pod's
// prefix, gRPC OK as 200) and the redirect defaults of its gateway client.

const echo = (pod: string, headers: Record<string, string[]> = {}, path = '/'): Answer =>
  ({ code: 200, headers: { 'content-type': ['application/json'] }, body: { path, host: 'echo', method: 'GET', proto: 'HTTP/1.1', headers, namespace: 'gateway-conformance-mesh', pod } })

t.test('backend: the answering pod\'s name must start with it', async (t) => {
  const c: ExpectedCase = { request: { path: '/v2' }, backend: 'echo-v2' }
  t.equal(mismatch(c, echo('echo-v2-7c4b9d6f58-h8wnd')), null)
  t.match(mismatch(c, echo('echo-v1-5d9f8c7b64-k7xqp')), /answered by echo-v1-5d9f8c7b64-k7xqp, wanted echo-v2/)
  t.match(mismatch(c, { error: 'ECONNREFUSED' }), /no answer: ECONNREFUSED/)
})

t.test('status: one of the wanted codes (default 200); gRPC OK counts as 200', async (t) => {
  t.match(mismatch({ request: { path: '/' }, response: { statusCodes: [404] } }, echo('echo-v1-a-b')), /status 200, wanted one of 404/)
  t.equal(mismatch({ request: { path: '/' }, response: { statusCodes: [404] } }, { code: 404, headers: {}, body: '' }), null)
  const grpc: ExpectedCase = { request: { protocol: 'grpc', host: 'echo:7070' }, response: { statusCodes: [0] } }
  t.equal(mismatch(grpc, { code: 200, grpcCode: 0, body: { headers: [], context: { pod: 'echo-v1-a-b' } } }), null)
  t.match(mismatch(grpc, { code: 14, grpcCode: 14, error: 'unavailable' }), /status 14 \(unavailable\)/)
})

t.test('request headers: present with their values joined by ",", absent ones absent, names in any case', async (t) => {
  const c: ExpectedCase = { request: { path: '/add' }, expectedRequest: { headers: { 'X-Header-Add': 'some-other-value,add-appends-values' }, absentHeaders: ['x-header-remove'] } }
  t.equal(mismatch(c, echo('echo-v1-a-b', { 'X-Header-Add': ['some-other-value', 'add-appends-values'] })), null, 'two field lines')
  t.equal(mismatch(c, echo('echo-v1-a-b', { 'X-Header-Add': ['some-other-value,add-appends-values'] })), null, 'one line, comma-joined')
  t.match(mismatch(c, echo('echo-v1-a-b', { 'X-Header-Add': ['some-other-value, add-appends-values'] })), /received X-Header-Add: some-other-value, add-appends-values/, 'joined with ", " is not the suite\'s form')
  t.match(mismatch(c, echo('echo-v1-a-b', { 'X-Header-Add': ['add-appends-values'] })), /wanted some-other-value,add-appends-values/)
  t.match(mismatch(c, echo('echo-v1-a-b', { 'X-Header-Add': ['some-other-value', 'add-appends-values'], 'X-Header-Remove': ['val'] })), /received x-header-remove: val, wanted none/)
  const g: ExpectedCase = { request: { protocol: 'grpc' }, expectedRequest: { headers: { 'x-header-add': 'a,b' } } }
  t.equal(mismatch(g, { code: 200, body: { headers: [{ key: 'x-header-add', value: 'a' }, { key: 'x-header-add', value: 'b' }], context: { pod: 'p' } } }), null, 'gRPC metadata entries')
})

t.test('response headers: the first value must equal; absent ones absent', async (t) => {
  const c: ExpectedCase = { request: {}, response: { headers: { 'X-Header-Set': 'set' } } }
  t.equal(mismatch(c, { ...echo('echo-v2-a-b'), headers: { 'x-header-set': ['set'] } }), null)
  t.match(mismatch(c, echo('echo-v2-a-b')), /X-Header-Set is "", wanted "set"/)
  t.match(mismatch({ request: {}, response: { absentHeaders: ['X-Header-Set'] } }, { ...echo('echo-v1-a-b'), headers: { 'x-header-set': ['v1'] } }), /carries X-Header-Set: v1/)
})

t.test('path: what the backend saw, when the case states it', async (t) => {
  const c: ExpectedCase = { request: { path: '/prefix/one/two' }, expectedRequest: { path: '/one/two' }, backend: 'echo-v1' }
  t.equal(mismatch(c, echo('echo-v1-a-b', {}, '/one/two')), null)
  t.match(mismatch(c, echo('echo-v1-a-b', {}, '/prefix/one/two')), /saw path \/prefix\/one\/two, wanted \/one\/two/)
})

t.test('redirects: Location against the stated fields, the rest as the gateway client defaults them', async (t) => {
  const moved = (code: number, location: string): Answer => ({ code, headers: { location: [location] }, body: '' })
  const port: ExpectedCase = { request: { host: 'echo', path: '/port' }, response: { statusCodes: [302] }, redirect: { port: '8083' } }
  t.equal(mismatch(port, moved(302, 'http://echo:8083/port')), null)
  t.match(mismatch(port, moved(302, 'http://echo/port')), /port "" \(http:\/\/echo\/port\), wanted 8083/)
  const scheme: ExpectedCase = { request: { host: 'echo', path: '/scheme' }, response: { statusCodes: [302] }, redirect: { scheme: 'https' } }
  t.equal(mismatch(scheme, moved(302, 'https://echo/scheme')), null)
  t.equal(mismatch(scheme, moved(302, 'https://echo:443/scheme')), null, 'the scheme\'s own port may be written')
  t.match(mismatch(scheme, moved(302, 'https://echo:80/scheme')), /port 80/, 'not another one')
  t.match(mismatch(scheme, moved(302, 'http://echo/scheme')), /scheme http/)
  const path: ExpectedCase = { request: { host: 'echo', path: '/original-prefix/lemon' }, response: { statusCodes: [302] }, redirect: { path: '/replacement-prefix/lemon' } }
  t.equal(mismatch(path, moved(302, 'http://echo/replacement-prefix/lemon')), null)
  t.match(mismatch(path, moved(302, 'http://echo/original-prefix/lemon')), /path \/original-prefix\/lemon/)
  const host: ExpectedCase = { request: { host: 'echo', path: '/hostname-redirect' }, response: { statusCodes: [302] }, redirect: { host: 'example.org' } }
  t.equal(mismatch(host, moved(302, 'http://example.org/hostname-redirect')), null, 'unstated path: the request\'s')
  t.match(mismatch(host, moved(302, 'http://echo/hostname-redirect')), /host echo/)
  t.match(mismatch(host, { code: 302, headers: {}, body: '' }), /without Location/)
  t.match(mismatch(host, moved(301, 'http://example.org/hostname-redirect')), /status 301, wanted one of 302/)
})

t.test('weights: the suite\'s backend names and ±5 points', async (t) => {
  t.equal(backendOf('echo-v1-5d9f8c7b64-k7xqp'), 'echo-v1')
  t.equal(backendOf('echo'), 'echo')
  const pods = (v1: number, v2: number): string[] => [...Array(v1).fill('echo-v1-a-b'), ...Array(v2).fill('echo-v2-c-d')]
  const shares = { 'echo-v1': 0.7, 'echo-v2': 0.3 }
  t.equal(weightMismatch(pods(350, 150), shares), null)
  t.equal(weightMismatch(pods(370, 130), shares), null, '74/26 is within 5 points')
  t.match(weightMismatch(pods(400, 100), shares), /echo-v1 took 0\.800/)
  t.match(weightMismatch(pods(500, 0), shares), /echo-v2 received nothing/)
  t.match(weightMismatch([...pods(350, 140), ...Array(10).fill('echo-v3-e-f')], { ...shares, 'echo-v3': 0 }), /3 backends answered, wanted 2/, 'a zero-weight backend must take nothing')
  t.match(weightMismatch(['other-x-y'], shares), /answered by other-x-y/)
})

t.test('case names as the suite generates them', async (t) => {
  t.equal(caseName({ request: { path: '/v2' }, backend: 'echo-v2' }, 3), "3 request to 'echo/v2' should go to echo-v2")
  t.equal(caseName({ request: { path: '/', headers: { Version: 'two' } }, backend: 'echo-v2' }, 5), "5 request to 'echo/' with headers should go to echo-v2")
  t.equal(caseName({ request: { path: '/?color=blue' }, response: { statusCodes: [404] } }, 4), "4 request to 'echo/?color=blue' should receive one of [404]")
  t.equal(caseName({ name: 'Send to service', request: {} }, 0), 'Send to service')
})
