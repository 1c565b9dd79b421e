import t from 'tap'
import { explain } from '../../src/policy/explain'
import { explanationText } from '../../src/policy/explain-text'
import { compilePolicySet, type PolicySet } from '../../src/policy/policy-set'
import type { RequestView } from '../../src/policy/request-view'
import { admitDocuments } from '../../src/resources/admission'
import { ap, DEV_WEB, FILE, PROD_API, request } from './helpers'

// L7 conditions (to.operation methods/paths/hosts, `when`) decided per request by the
// real evaluator, with Istio's matching; and a connection without a request decided by
// Istio's rule for L7 policies on TCP traffic.

function set (yaml: string): PolicySet {
  const snapshot = admitDocuments([{ path: FILE, text: yaml }], { origin: '/policies', generation: 1 })
  const refused = snapshot.objects.filter((o) => o.state === 'refused')
  if (refused.length > 0) throw new Error(`refused: ${JSON.stringify(refused.map((o) => o.issues))}`)
  return compilePolicySet(snapshot)
}

function http (method: string, path: string, headers: Record<string, string> = {}, host = 'db.prod.svc'): RequestView {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { method, path, host, header: (name) => lower[name] }
}

function req (s: PolicySet, r: { principal?: string, view?: RequestView | null, port?: number, ip?: string, dstIp?: string }): ReturnType<PolicySet['authz']['evaluate']> {
  const base = request({ principal: r.principal ?? PROD_API, ip: r.ip, to: 'prod', port: r.port ?? 8080 })
  return s.authz.evaluate({ ...base, destination: { ...base.destination, ip: r.dstIp ?? null }, request: r.view ?? null })
}

const ADMIN_GET = ap('prod', 'deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin*"]') +
  ap('prod', 'allow-get', 'rules:\n- to:\n  - operation:\n      methods: ["GET"]')

t.test('DENY paths ["/admin*"] and ALLOW only GET: exactly what Istio decides, request by request', async (t) => {
  const s = set(ADMIN_GET)
  t.match(req(s, { view: http('GET', '/public') }), { allowed: true, basis: 'allow-matched', policy: 'prod/allow-get', rule: 0, fields: ['spec.rules[0].to[0].operation.methods'] })
  t.match(req(s, { view: http('GET', '/admin') }), { allowed: false, basis: 'deny-matched', policy: 'prod/deny-admin', fields: ['spec.rules[0].to[0].operation.paths'] })
  t.match(req(s, { view: http('GET', '/admin/users') }), { allowed: false, policy: 'prod/deny-admin' })
  t.match(req(s, { view: http('GET', '/admin/') }), { allowed: false, policy: 'prod/deny-admin' })
  t.match(req(s, { view: http('GET', '/admin?x=1') }), { allowed: false, policy: 'prod/deny-admin' }, 'the query string is not part of the matched path')
  t.match(req(s, { view: http('GET', '/ADMIN') }), { allowed: true, policy: 'prod/allow-get' }, 'paths are case-sensitive, as Istio')
  t.match(req(s, { view: http('POST', '/public') }), { allowed: false, basis: 'no-allow-matched' })
  t.match(req(s, { view: http('get', '/public') }), { allowed: false, basis: 'no-allow-matched' }, 'methods are case-sensitive')
  const d = req(s, { view: http('GET', '/admin') })
  t.equal(d.notEvaluated, undefined, 'a request: every condition evaluated')
})

t.test('a connection without a request: an L7 ALLOW rule cannot match, an L7 DENY applies without its L7 conditions', async (t) => {
  const s = set(ADMIN_GET)
  const d = req(s, {})
  t.match(d, { allowed: false, basis: 'deny-matched', policy: 'prod/deny-admin', fields: [], notEvaluated: ['spec.rules[0].to[0].operation.paths'] })
  t.match(d.reason, /without its L7 conditions/)
  const allowOnly = set(ap('prod', 'allow-get', 'rules:\n- to:\n  - operation:\n      methods: ["GET"]\n- from:\n  - source:\n      namespaces: ["prod"]'))
  t.match(req(allowOnly, { principal: DEV_WEB }), { allowed: false, basis: 'no-allow-matched', reason: /ALLOW rules with L7 conditions cannot match a connection that carries no HTTP request \(prod\/allow-get\)/ })
  t.match(req(allowOnly, { principal: PROD_API }), { allowed: true, rule: 1 }, 'its L4 rule still allows')
  const portScoped = set(ap('prod', 'deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["8080"]\n      paths: ["/admin*"]'))
  t.match(req(portScoped, { port: 9090 }), { allowed: true, basis: 'no-allow-policy' }, 'its L4 conditions still narrow it')
  t.match(req(portScoped, { port: 8080 }), { allowed: false, fields: ['spec.rules[0].to[0].operation.ports'], notEvaluated: ['spec.rules[0].to[0].operation.paths'] })
})

t.test('string matches: exact, prefix, suffix, presence; hosts without case; not… forms hold when the value is absent', async (t) => {
  const s = set(ap('prod', 'allow', [
    'rules:',
    '- to:',
    '  - operation:',
    '      hosts: ["API.example.com", "*.internal"]',
    '      notPaths: ["*.secret", "/private/*"]',
    '      methods: ["P*"]',
    '- when:',
    '  - key: request.headers[X-Debug]',
    '    values: ["*"]',
    '  - key: request.headers[x-env]',
    '    notValues: ["prod*"]'
  ].join('\n')))
  t.match(req(s, { view: http('POST', '/a', {}, 'api.EXAMPLE.com') }), { allowed: true, rule: 0 })
  t.match(req(s, { view: http('PUT', '/a', {}, 'db.internal') }), { allowed: true, rule: 0 })
  t.match(req(s, { view: http('PUT', '/a', {}, 'api.example.com:8080') }), { allowed: false }, 'a port in the host is part of the value, as in Istio')
  t.match(req(s, { view: http('POST', '/x.secret', {}, 'api.example.com') }), { allowed: false })
  t.match(req(s, { view: http('POST', '/private/a', {}, 'api.example.com') }), { allowed: false })
  t.match(req(s, { view: http('GET', '/a', {}, 'api.example.com') }), { allowed: false })
  t.match(req(s, { view: http('GET', '/a', { 'x-debug': '' }) }), { allowed: false }, 'presence "*" needs a value')
  t.match(req(s, { view: http('GET', '/a', { 'x-debug': '1' }) }), { allowed: true, rule: 1, fields: ['spec.rules[1].when[0].values', 'spec.rules[1].when[1].notValues'] }, 'header absent: notValues holds')
  t.match(req(s, { view: http('GET', '/a', { 'x-debug': '1', 'x-env': 'production' }) }), { allowed: false })
})

t.test('path templates: {*} one segment, {**} the rest', async (t) => {
  const s = set(ap('prod', 'allow', 'rules:\n- to:\n  - operation:\n      paths: ["/api/{*}/items", "/files/{**}"]'))
  const ok = (path: string): boolean => req(s, { view: http('GET', path) }).allowed
  t.ok(ok('/api/v1/items'))
  t.notOk(ok('/api/v1/v2/items'))
  t.notOk(ok('/api//items'))
  t.ok(ok('/files/a'))
  t.ok(ok('/files/a/b/c.txt'))
  t.notOk(ok('/files/'))
  t.notOk(ok('/files'))
})

t.test('when on connection attributes: source.ip, source.namespace, source.principal, destination.ip, destination.port', async (t) => {
  const s = set(ap('prod', 'allow', [
    'rules:',
    '- when:',
    '  - key: source.ip',
    '    values: ["10.1.0.0/16"]',
    '  - key: source.namespace',
    '    notValues: ["dev"]',
    '  - key: destination.ip',
    '    values: ["10.2.0.5"]',
    '  - key: destination.port',
    '    values: ["8080"]',
    '- when:',
    '  - key: source.principal',
    '    values: ["spiffe://cluster.local/ns/dev/*"]'
  ].join('\n')))
  t.match(req(s, { ip: '10.1.2.3', dstIp: '10.2.0.5' }), { allowed: true, rule: 0 }, 'no L7 key: decided on a connection too')
  t.match(req(s, { ip: '10.1.2.3', dstIp: '10.2.0.6' }), { allowed: false })
  t.match(req(s, { ip: '10.1.2.3', dstIp: '10.2.0.5', port: 9090 }), { allowed: false })
  t.match(req(s, { ip: '10.9.2.3', dstIp: '10.2.0.5' }), { allowed: false })
  t.match(req(s, { principal: DEV_WEB, ip: '10.9.2.3' }), { allowed: true, rule: 1 })
  t.match(req(s, { principal: DEV_WEB, ip: '10.1.2.3', dstIp: '10.2.0.5' }), { allowed: true, rule: 1 }, 'notValues dev excludes rule 0')
})

t.test('admission: L7 fields accepted as written; keys Ferry cannot evaluate degrade by Istio\'s rule; unknown keys and bad values refused by name', async (t) => {
  const admit = (spec: string): ReturnType<typeof admitDocuments>['objects'][number] => admitDocuments([{ path: FILE, text: ap('prod', 'x', spec) }], { origin: '/p', generation: 1 }).objects[0]
  t.match(admit('rules:\n- to:\n  - operation:\n      methods: ["GET"]\n      paths: ["/a*", "/b/{*}"]\n      hosts: ["*"]\n  when:\n  - key: request.headers[x-a]\n    values: ["1"]'), { state: 'accepted', issues: [] })
  const jwt = admit('rules:\n- to:\n  - operation:\n      methods: ["GET"]\n  when:\n  - key: request.auth.claims[iss]\n    values: ["x"]')
  t.match(jwt, { state: 'degraded', issues: [{ path: ['spec', 'rules', 0, 'when', 0], message: /request\.auth\.\* come from JWTs.*rule 0 of this ALLOW policy never matches/ }] })
  t.match(admit('rules:\n- when:\n  - key: request.magic\n    values: ["x"]'), { state: 'refused', issues: [{ path: ['spec', 'rules', 0, 'when', 0, 'key'], message: /"request\.magic" is not a condition key Istio defines/ }] })
  t.match(admit('rules:\n- when:\n  - key: source.ip\n    values: ["10.0.0.0/33"]'), { state: 'refused', issues: [{ path: ['spec', 'rules', 0, 'when', 0, 'values', 0], message: /is not an IP address/ }] })
  t.match(admit('rules:\n- when:\n  - key: request.headers[x]'), { state: 'refused', issues: [{ message: /needs values or notValues/ }] })
  t.match(admit('rules:\n- to:\n  - operation:\n      paths: ["/a/{**}/b"]'), { state: 'refused', issues: [{ path: ['spec', 'rules', 0, 'to', 0, 'operation', 'paths', 0], message: /\{\*\*\} must be the last segment/ }] })
  t.match(admit('rules:\n- to:\n  - operation:\n      paths: ["/a/{id}"]'), { state: 'refused', issues: [{ message: /named variables, partial segments/ }] })
  t.match(admit('rules:\n- to:\n  - operation:\n      paths: ["/a*b"]'), { state: 'refused' })
  t.match(admit('rules:\n- to:\n  - operation:\n      methods: ["G ET"]'), { state: 'refused' })
})

t.test('l7PolicyFor: a policy with L7 rules engages L7 on the ports those rules can apply to', async (t) => {
  const s = set(ap('prod', 'deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["8080"]\n      paths: ["/admin*"]') +
    ap('prod', 'l4-only', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]') +
    ap('prod', 'dry', 'rules:\n- when:\n  - key: request.headers[x]\n    values: ["1"]\n  - key: destination.port\n    notValues: ["8080", "7070"]', { annotations: { 'istio.io/dry-run': 'true' } }))
  const w = s.authz.forWorkload({ namespace: 'prod', labels: { app: 'db' } })
  t.equal(w.l7PolicyFor(8080), 'prod/deny-admin')
  t.equal(w.l7PolicyFor(9090), 'prod/dry', 'a dry-run L7 policy engages too (to be evaluated)')
  t.equal(w.l7PolicyFor(7070), null)
  t.equal(s.authz.forWorkload({ namespace: 'dev', labels: { app: 'db' } }).l7PolicyFor(8080), null)
})

t.test('explain: a request names the deciding rule and its L7 conditions; a connection says they were not evaluated', async (t) => {
  const s = set(ADMIN_GET)
  const base = request({ principal: PROD_API, to: 'prod', port: 8080 })
  const e = explain(s, { ...base, request: http('GET', '/admin') })
  t.match(e, { allowed: false, decision: { policy: 'prod/deny-admin' }, request: { http: { method: 'GET', path: '/admin' } } })
  t.match(e.decidedBy, [{ field: 'spec.rules[0].to[0].operation.paths', detail: 'request path "/admin" matches paths[0] "/admin*"', location: { line: 11 } }])
  const text = explanationText(e, { cwd: '/', source: 'x', destination: 'y' })
  t.match(text, /request {5}GET \/admin \(host db\.prod\.svc\)/)
  t.match(text, /✓ to\[0\]\.operation\.paths: request path "\/admin" matches paths\[0\] "\/admin\*"/)
  const c = explain(s, base)
  const ct = explanationText(c, { cwd: '/', source: 'x', destination: 'y' })
  t.match(ct, /request {5}a connection \(no HTTP request: L7 conditions are not evaluated\)/)
  t.match(ct, /not checked spec\.rules\[0\]\.to\[0\]\.operation\.paths/)
  t.match(ct, /\? to\[0\]\.operation\.paths: not evaluated: the connection carries no HTTP request/)
  t.match(ct, /rule 0: does not match — has L7 conditions: an ALLOW rule with them cannot match/)
})

t.test('deniedWhateverTheRequest: a connection refused before any request only when no request could be allowed', async (t) => {
  const dev = { principal: DEV_WEB, namespace: null, ip: null }
  const prod = { principal: PROD_API, namespace: null, ip: null }
  const denyAdmin = ap('prod', 'a-deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin*"]')
  const w = (yaml: string) => set(yaml).authz.forWorkload({ namespace: 'prod', labels: { app: 'db' } })
  t.equal(w(denyAdmin).deniedWhateverTheRequest(dev, 8080), null, 'an L7 DENY alone: requests decide')
  const l4Deny = w(denyAdmin + ap('prod', 'b-deny-dev', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/x"]\n- from:\n  - source:\n      namespaces: ["dev"]'))
  t.match(l4Deny.deniedWhateverTheRequest(dev, 8080), { allowed: false, basis: 'deny-matched', policy: 'prod/b-deny-dev', rule: 1 }, 'a DENY rule without L7 conditions, after L7 ones')
  t.equal(l4Deny.deniedWhateverTheRequest(prod, 8080), null, 'another source')
  const l4Allow = w(denyAdmin + ap('prod', 'allow-prod', 'rules:\n- from:\n  - source:\n      namespaces: ["prod"]'))
  t.match(l4Allow.deniedWhateverTheRequest(dev, 8080), { allowed: false, basis: 'no-allow-matched' }, 'ALLOW rules without L7 conditions, none matching')
  t.equal(l4Allow.deniedWhateverTheRequest(prod, 8080), null, 'one matching')
  const l7Allow = w(denyAdmin + ap('prod', 'allow-get', 'rules:\n- to:\n  - operation:\n      methods: ["GET"]') + ap('prod', 'allow-prod', 'rules:\n- from:\n  - source:\n      namespaces: ["prod"]'))
  t.equal(l7Allow.deniedWhateverTheRequest(dev, 8080), null, 'an ALLOW with L7 conditions: a request may match it')
})
