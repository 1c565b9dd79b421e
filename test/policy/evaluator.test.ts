import t from 'tap'
import { compilePolicySet } from '../../src/policy/policy-set'
import { buildSnapshot } from '../../src/resources/loader'
import { ap, decide, DEV_WEB, FILE, PROD_API, policySet, request } from './helpers'

// AuthorizationPolicy semantics, one behaviour per test, all through the real loader.

t.test('no policy at all: allowed by default', async (t) => {
  const d = decide(policySet(''), { principal: DEV_WEB, to: 'prod' })
  t.match(d, { allowed: true, action: 'ALLOW', basis: 'no-allow-policy', dryRun: [] })
  t.equal(d.policy, undefined)
})

t.test('principals: exact, with and without spiffe://, prefix*, *suffix and * (present)', async (t) => {
  const cases: Array<[string, string | null, boolean]> = [
    ['cluster.local/ns/dev/sa/web', DEV_WEB, true],
    ['cluster.local/ns/dev/sa/web', `spiffe://${DEV_WEB}`, true],
    ['spiffe://cluster.local/ns/dev/sa/web', DEV_WEB, true],
    ['cluster.local/ns/dev/sa/web', 'cluster.local/ns/dev/sa/web2', false],
    ['cluster.local/ns/dev/*', 'cluster.local/ns/dev/sa/anything', true],
    ['cluster.local/ns/dev/*', 'cluster.local/ns/devx/sa/web', false],
    ['*/sa/web', 'other.domain/ns/x/sa/web', true],
    ['*/sa/web', 'cluster.local/ns/x/sa/webby', false],
    ['*', DEV_WEB, true],
    ['*', null, false]
  ]
  for (const [pattern, principal, allowed] of cases) {
    const set = policySet(ap('prod', 'allow', `action: ALLOW\nrules:\n- from:\n  - source:\n      principals: ["${pattern}"]`))
    t.equal(decide(set, { principal, to: 'prod' }).allowed, allowed, `${pattern} vs ${String(principal)}`)
  }
})

t.test('notPrincipals: holds for every other principal, and for a plaintext peer (as in Istio)', async (t) => {
  const set = policySet(ap('prod', 'deny-others', 'action: DENY\nrules:\n- from:\n  - source:\n      notPrincipals: ["cluster.local/ns/prod/*"]'))
  t.match(decide(set, { principal: PROD_API, to: 'prod' }), { allowed: true, basis: 'no-allow-policy' })
  t.match(decide(set, { principal: DEV_WEB, to: 'prod' }), { allowed: false, basis: 'deny-matched', policy: 'prod/deny-others', rule: 0, fields: ['spec.rules[0].from[0].source.notPrincipals'] })
  t.match(decide(set, { principal: null, ip: '10.0.0.1', to: 'prod' }), { allowed: false }, 'no identity is "not" any principal')
})

t.test('namespaces and notNamespaces; the namespace comes from the principal when not given', async (t) => {
  const deny = policySet(ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev", "test-*"]'))
  t.match(decide(deny, { principal: DEV_WEB, to: 'prod' }), { allowed: false, fields: ['spec.rules[0].from[0].source.namespaces'] })
  t.match(decide(deny, { namespace: 'test-7', to: 'prod' }), { allowed: false }, 'prefix wildcard on namespaces')
  t.match(decide(deny, { principal: PROD_API, to: 'prod' }), { allowed: true })
  t.match(decide(deny, { ip: '10.0.0.1', to: 'prod' }), { allowed: true }, 'a plaintext peer has no namespace: namespaces cannot match')
  const notNs = policySet(ap('prod', 'only-prod', 'action: DENY\nrules:\n- from:\n  - source:\n      notNamespaces: ["prod"]'))
  t.match(decide(notNs, { principal: DEV_WEB, to: 'prod' }), { allowed: false, fields: ['spec.rules[0].from[0].source.notNamespaces'] })
  t.match(decide(notNs, { principal: PROD_API, to: 'prod' }), { allowed: true })
  t.match(decide(notNs, { ip: '10.0.0.1', to: 'prod' }), { allowed: false }, 'plaintext is "not" prod')
})

t.test('ipBlocks and notIpBlocks, IPv4 and IPv6, single addresses and CIDRs', async (t) => {
  const set = policySet(ap('prod', 'allow-net', 'action: ALLOW\nrules:\n- from:\n  - source:\n      ipBlocks: ["10.1.0.0/16", "192.168.1.7", "fd00:1::/32", "2001:db8::1"]'))
  const allowed = (ip: string): boolean => decide(set, { ip, to: 'prod' }).allowed
  t.ok(allowed('10.1.200.3'))
  t.notOk(allowed('10.2.0.1'))
  t.ok(allowed('192.168.1.7'))
  t.notOk(allowed('192.168.1.8'))
  t.ok(allowed('::ffff:10.1.2.3'), 'v4-mapped IPv6 is IPv4')
  t.ok(allowed('fd00:1:ffff::9'))
  t.ok(allowed('FD00:0001:0:0:0:0:0:1'), 'any IPv6 spelling')
  t.notOk(allowed('fd00:2::1'))
  t.ok(allowed('2001:db8::1'))
  t.notOk(allowed('2001:db8::2'))
  t.notOk(decide(set, { principal: DEV_WEB, to: 'prod' }).allowed, 'no address: ipBlocks cannot match')
  const not = policySet(ap('prod', 'deny-outside', 'action: DENY\nrules:\n- from:\n  - source:\n      notIpBlocks: ["10.0.0.0/8", "fd00::/16"]'))
  t.match(decide(not, { ip: '10.9.9.9', to: 'prod' }), { allowed: true })
  t.match(decide(not, { ip: 'fd00::5', to: 'prod' }), { allowed: true })
  t.match(decide(not, { ip: '172.16.0.1', to: 'prod' }), { allowed: false, fields: ['spec.rules[0].from[0].source.notIpBlocks'] })
  t.match(decide(not, { ip: 'fe80::1', to: 'prod' }), { allowed: false }, 'an IPv6 address is outside IPv4 blocks')
})

t.test('ports and notPorts match the destination port', async (t) => {
  const set = policySet(ap('prod', 'deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["9000", "9001"]'))
  t.match(decide(set, { principal: DEV_WEB, to: 'prod', port: 9001 }), { allowed: false, fields: ['spec.rules[0].to[0].operation.ports'] })
  t.match(decide(set, { principal: DEV_WEB, to: 'prod', port: 5432 }), { allowed: true })
  const not = policySet(ap('prod', 'only-pg', 'action: DENY\nrules:\n- to:\n  - operation:\n      notPorts: ["5432"]'))
  t.match(decide(not, { to: 'prod', port: 5432 }), { allowed: true })
  t.match(decide(not, { to: 'prod', port: 22 }), { allowed: false, fields: ['spec.rules[0].to[0].operation.notPorts'] })
})

t.test('within a source all fields must hold; from entries, to entries and rules are alternatives', async (t) => {
  const set = policySet(ap('prod', 'allow', `action: ALLOW
rules:
- from:
  - source: { namespaces: ["dev"], ipBlocks: ["10.0.0.0/8"] }
  - source: { principals: ["cluster.local/ns/ops/sa/admin"] }
  to:
  - operation: { ports: ["5432"] }
- to:
  - operation: { ports: ["8080"] }`))
  t.match(decide(set, { principal: DEV_WEB, ip: '10.0.0.1', to: 'prod' }), { allowed: true, rule: 0, fields: ['spec.rules[0].from[0].source.namespaces', 'spec.rules[0].from[0].source.ipBlocks', 'spec.rules[0].to[0].operation.ports'] })
  t.match(decide(set, { principal: DEV_WEB, ip: '172.16.0.1', to: 'prod' }), { allowed: false, basis: 'no-allow-matched' }, 'one field of the source fails')
  t.match(decide(set, { principal: 'cluster.local/ns/ops/sa/admin', to: 'prod' }), { allowed: true, rule: 0, fields: ['spec.rules[0].from[1].source.principals', 'spec.rules[0].to[0].operation.ports'] })
  t.match(decide(set, { principal: 'cluster.local/ns/ops/sa/admin', to: 'prod', port: 22 }), { allowed: false }, 'from matches, to does not')
  t.match(decide(set, { to: 'prod', port: 8080 }), { allowed: true, rule: 1, fields: ['spec.rules[1].to[0].operation.ports'] })
})

t.test('empty rule semantics as in Istio', async (t) => {
  const allowAll = policySet(ap('prod', 'allow-all', 'action: ALLOW\nrules:\n- {}'))
  t.match(decide(allowAll, { to: 'prod' }), { allowed: true, basis: 'allow-matched', policy: 'prod/allow-all', rule: 0, fields: [] })
  const allowNothing = policySet(ap('prod', 'allow-nothing', '{}'))
  t.match(decide(allowNothing, { principal: PROD_API, to: 'prod' }), { allowed: false, basis: 'no-allow-matched' }, 'spec: {} is ALLOW with no rules: allows nothing')
  const noRulesDeny = policySet(ap('prod', 'deny-nothing', 'action: DENY'))
  t.match(decide(noRulesDeny, { principal: DEV_WEB, to: 'prod' }), { allowed: true, basis: 'no-allow-policy' }, 'DENY with no rules denies nothing')
  const denyAll = policySet(ap('prod', 'deny-all', 'action: DENY\nrules:\n- {}'))
  t.match(decide(denyAll, { principal: PROD_API, to: 'prod' }), { allowed: false, basis: 'deny-matched', policy: 'prod/deny-all' })
  const emptyList = policySet(ap('prod', 'allow-empty', 'action: ALLOW\nrules: []'))
  t.match(decide(emptyList, { to: 'prod' }), { allowed: false, basis: 'no-allow-matched' }, 'rules: [] is no rules')
})

t.test('DENY wins over a matching ALLOW, whatever their order', async (t) => {
  const set = policySet(
    ap('prod', 'a-allow-all', 'action: ALLOW\nrules:\n- {}') +
    ap('prod', 'z-deny-dev', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev"] }'))
  t.match(decide(set, { principal: DEV_WEB, to: 'prod' }), { allowed: false, basis: 'deny-matched', policy: 'prod/z-deny-dev' })
  t.match(decide(set, { principal: PROD_API, to: 'prod' }), { allowed: true, basis: 'allow-matched', policy: 'prod/a-allow-all' })
})

t.test('once any ALLOW applies to a workload, one must match; other workloads keep the default', async (t) => {
  const set = policySet(ap('prod', 'db-from-api', 'action: ALLOW\nselector:\n  matchLabels: { app: db }\nrules:\n- from:\n  - source: { principals: ["cluster.local/ns/prod/sa/api"] }'))
  t.match(decide(set, { principal: PROD_API, to: 'prod', labels: { app: 'db', tier: 'data' } }), { allowed: true, policy: 'prod/db-from-api' })
  const denied = decide(set, { principal: DEV_WEB, to: 'prod', labels: { app: 'db' } })
  t.match(denied, { allowed: false, action: 'DENY', basis: 'no-allow-matched' })
  t.match(denied.reason, /1 ALLOW policy applies to the workload \(prod\/db-from-api\) and none matched/)
  t.match(decide(set, { principal: DEV_WEB, to: 'prod', labels: { app: 'cache' } }), { allowed: true, basis: 'no-allow-policy' }, 'selector does not match')
  t.match(decide(set, { principal: DEV_WEB, to: 'staging', labels: { app: 'db' } }), { allowed: true, basis: 'no-allow-policy' }, 'other namespace')
})

t.test('namespace-wide policies apply to every workload of their namespace only', async (t) => {
  const set = policySet(ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev"] }') +
    ap('prod', 'empty-selector', 'action: DENY\nselector: {}\nrules:\n- to:\n  - operation: { ports: ["22"] }'))
  for (const labels of [{ app: 'db' }, { app: 'web' }, {}] as Array<Record<string, string>>) {
    t.match(decide(set, { principal: DEV_WEB, to: 'prod', labels }), { allowed: false, policy: 'prod/deny-dev' }, JSON.stringify(labels))
  }
  t.match(decide(set, { principal: PROD_API, to: 'prod', port: 22 }), { allowed: false, policy: 'prod/empty-selector' }, 'an empty selector is namespace-wide')
  t.match(decide(set, { principal: DEV_WEB, to: 'dev' }), { allowed: true })
})

t.test('mesh-wide: policies in the root namespace apply everywhere; the root namespace is configurable', async (t) => {
  const yaml = ap('ferry-system', 'deny-legacy', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["legacy"] }') +
    ap('ferry-system', 'deny-ssh-on-bastions', 'action: DENY\nselector:\n  matchLabels: { role: bastion }\nrules:\n- to:\n  - operation: { ports: ["22"] }')
  const set = policySet(yaml)
  const legacy = 'cluster.local/ns/legacy/sa/x'
  for (const ns of ['prod', 'dev', 'ferry-system']) t.match(decide(set, { principal: legacy, to: ns }), { allowed: false, policy: 'ferry-system/deny-legacy' }, ns)
  t.match(decide(set, { principal: PROD_API, to: 'dev', labels: { role: 'bastion' }, port: 22 }), { allowed: false, policy: 'ferry-system/deny-ssh-on-bastions' }, 'a selector in the root namespace selects in every namespace')
  t.match(decide(set, { principal: PROD_API, to: 'dev', labels: { role: 'web' }, port: 22 }), { allowed: true })
  const elsewhere = policySet(yaml, { rootNamespace: 'istio-system' })
  t.match(decide(elsewhere, { principal: legacy, to: 'prod' }), { allowed: true }, 'with another root namespace, ferry-system is just a namespace')
  t.match(decide(elsewhere, { principal: legacy, to: 'ferry-system' }), { allowed: false })
})

t.test('mesh-wide ALLOW and a namespace DENY combine in Istio order', async (t) => {
  const set = policySet(
    ap('ferry-system', 'allow-mesh', 'action: ALLOW\nrules:\n- from:\n  - source: { principals: ["cluster.local/*"] }') +
    ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev"] }'))
  t.match(decide(set, { principal: PROD_API, to: 'prod' }), { allowed: true, policy: 'ferry-system/allow-mesh' })
  t.match(decide(set, { principal: DEV_WEB, to: 'prod' }), { allowed: false, policy: 'prod/deny-dev' })
  t.match(decide(set, { ip: '10.0.0.1', to: 'staging' }), { allowed: false, basis: 'no-allow-matched' }, 'plaintext is outside the mesh-wide ALLOW')
})

t.test('dry-run policies are evaluated and reported, never enforced (Istio and Ferry annotations)', async (t) => {
  for (const annotation of ['istio.io/dry-run', 'ferry.dev/dry-run']) {
    const set = policySet(ap('prod', 'deny-dev-dry', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev"] }', { annotations: { [annotation]: 'true' } }))
    const d = decide(set, { principal: DEV_WEB, to: 'prod' })
    t.match(d, { allowed: true, basis: 'no-allow-policy', dryRunAllowed: false }, annotation)
    t.same(d.dryRun, [{ policy: 'prod/deny-dev-dry', action: 'DENY', matched: true, rule: 0, fields: ['spec.rules[0].from[0].source.namespaces'] }])
    const other = decide(set, { principal: PROD_API, to: 'prod' })
    t.match(other, { allowed: true, dryRunAllowed: true, dryRun: [{ policy: 'prod/deny-dev-dry', matched: false }] })
  }
  const off = policySet(ap('prod', 'deny-dev', 'action: DENY\nrules:\n- {}', { annotations: { 'istio.io/dry-run': 'false' } }))
  t.match(decide(off, { to: 'prod' }), { allowed: false, dryRun: [] }, 'dry-run "false" enforces')
})

t.test('a dry-run ALLOW shows what enforcing it would deny', async (t) => {
  const set = policySet(ap('prod', 'allow-api-only', 'action: ALLOW\nrules:\n- from:\n  - source: { principals: ["cluster.local/ns/prod/sa/api"] }', { annotations: { 'ferry.dev/dry-run': 'true' } }))
  t.match(decide(set, { principal: DEV_WEB, to: 'prod' }), { allowed: true, dryRunAllowed: false, dryRun: [{ action: 'ALLOW', matched: false }] })
  t.match(decide(set, { principal: PROD_API, to: 'prod' }), { allowed: true, dryRunAllowed: true, dryRun: [{ action: 'ALLOW', matched: true, rule: 0 }] })
  const withEnforced = policySet(
    ap('prod', 'allow-api-only', 'action: ALLOW\nrules:\n- from:\n  - source: { principals: ["cluster.local/ns/prod/sa/api"] }', { annotations: { 'ferry.dev/dry-run': 'true' } }) +
    ap('prod', 'allow-all', 'action: ALLOW\nrules:\n- {}'))
  t.match(decide(withEnforced, { principal: DEV_WEB, to: 'prod' }), { allowed: true, policy: 'prod/allow-all', dryRunAllowed: true }, 'the enforced ALLOW still matches')
})

t.test('a workload\'s policies are selected once per labels object', async (t) => {
  const set = policySet(ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev"] }'))
  const labels = Object.freeze({ app: 'db' })
  const w = set.authz.forWorkload({ namespace: 'prod', labels })
  t.equal(set.authz.forWorkload({ namespace: 'prod', labels }), w)
  t.not(set.authz.forWorkload({ namespace: 'staging', labels }), w, 'per namespace')
  t.same(w.policies.map((p) => p.ref), ['prod/deny-dev'])
})

t.test('benchmark: evaluation per connection against a compiled snapshot (diagnostic, not asserted)', async (t) => {
  let yaml = ''
  for (let n = 0; n < 100; n++) {
    yaml += ap(`ns${n}`, 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["dev", "test-*"] }')
    yaml += ap(`ns${n}`, 'allow-db', `action: ALLOW\nselector:\n  matchLabels: { app: db }\nrules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/ns${n}/sa/api", "cluster.local/ns/ops/*"]\n      ipBlocks: ["10.0.0.0/8", "fd00::/16"]\n  to:\n  - operation: { ports: ["5432"] }`)
  }
  yaml += ap('ferry-system', 'deny-legacy', 'action: DENY\nrules:\n- from:\n  - source: { namespaces: ["legacy"] }')
  const t0 = process.hrtime.bigint()
  const snapshot = buildSnapshot([{ path: FILE, text: yaml }], { origin: '/policies', generation: 1 })
  const t1 = process.hrtime.bigint()
  const set = compilePolicySet(snapshot)
  const t2 = process.hrtime.bigint()
  const labels = Object.freeze({ app: 'db' })
  const allowedReq = request({ principal: 'spiffe://cluster.local/ns/ns42/sa/api', ip: '10.1.2.3', to: 'ns42', labels })
  const deniedReq = request({ principal: DEV_WEB, ip: '10.1.2.3', to: 'ns42', labels })
  t.ok(set.authz.evaluate(allowedReq).allowed)
  t.notOk(set.authz.evaluate(deniedReq).allowed)
  const N = 200_000
  for (const [name, req] of [['allowed (DENY checked, ALLOW matched)', allowedReq], ['denied (DENY matched)', deniedReq]] as const) {
    for (let i = 0; i < 10_000; i++) set.authz.evaluate(req)
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) set.authz.evaluate(req)
    const ns = Number(process.hrtime.bigint() - t0) / N
    t.comment(`${name}: ${ns.toFixed(0)} ns per evaluation (201 policies, 100 namespaces)`)
  }
  t.comment(`load 201 policies (YAML, schema, freeze): ${(Number(t1 - t0) / 1e6).toFixed(1)} ms; compile them: ${(Number(t2 - t1) / 1e6).toFixed(1)} ms`)
})
