import t from 'tap'
import { explain } from '../../src/policy/explain'
import { explanationText } from '../../src/policy/explain-text'
import { compilePolicySet, type PolicySet } from '../../src/policy/policy-set'
import { admitDocuments } from '../../src/resources/admission'
import { ap, decide, DEV_WEB, FILE, PROD_API, request } from './helpers'

// What Ferry cannot enforce is applied in a form that never allows more than written
// (src/resources/degrade.ts), decided by the real evaluator. Each case would have been
// refused as a whole before (so a policy with one such field took no effect, or, in a
// directory, froze every change).

const STAGE_WEB = 'cluster.local/ns/stage/sa/web'
const ALLOW_MIXED = ap('prod', 'allow-mixed', 'rules:\n- from:\n  - source:\n      principals: ["' + STAGE_WEB + '"]\n      remoteIpBlocks: ["10.1.0.0/16"]\n- from:\n  - source:\n      principals: ["' + 'cluster.local/ns/prod/sa/api' + '"]')

function set (yaml: string): PolicySet {
  const snapshot = admitDocuments([{ path: FILE, text: yaml }], { origin: '/policies', generation: 1 })
  const refused = snapshot.objects.filter((o) => o.state === 'refused')
  if (refused.length > 0) throw new Error(`refused: ${JSON.stringify(refused)}`)
  return compilePolicySet(snapshot)
}

function pa (ns: string, name: string, spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: ${name}, namespace: ${ns} }\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n---\n`
}

t.test('DENY with requestPrincipals: applied without them, so it denies every request of its sources on that port (and no other port)', async (t) => {
  const s = set(ap('prod', 'deny-post', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]\n      requestPrincipals: ["issuer/*"]\n  to:\n  - operation:\n      ports: ["5432"]'))
  t.match(decide(s, { principal: DEV_WEB, to: 'prod', port: 5432 }), { allowed: false, basis: 'deny-matched', policy: 'prod/deny-post', rule: 0, degraded: true })
  t.match(decide(s, { principal: DEV_WEB, to: 'prod', port: 8080 }), { allowed: true, basis: 'no-allow-policy' }, 'the port it checks still narrows it')
  t.match(decide(s, { principal: PROD_API, to: 'prod', port: 5432 }), { allowed: true }, 'and the source it checks')
  const policy = s.snapshot.authorizationPolicies[0]
  t.same(policy.degraded.map((d) => [d.field, d.kind]), [['spec.rules[0].from[0].source.requestPrincipals', 'condition-dropped']])
  t.same(policy.spec.rules?.[0].dropped, ['spec.rules[0].from[0].source.requestPrincipals'])
})

t.test('DENY with a `when` key Ferry cannot evaluate, or with only such keys: the rule matches every connection of its sources, or every connection', async (t) => {
  const when = set(ap('prod', 'deny-header', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]\n  when:\n  - key: request.auth.claims[iss]\n    values: ["1"]'))
  t.same(when.snapshot.authorizationPolicies[0].spec.rules?.[0].dropped, ['spec.rules[0].when[0]'])
  t.equal(when.snapshot.authorizationPolicies[0].spec.rules?.[0].when, undefined, 'the entry is taken out')
  t.match(decide(when, { principal: DEV_WEB, to: 'prod', port: 1 }), { allowed: false, policy: 'prod/deny-header', degraded: true })
  t.match(decide(when, { principal: STAGE_WEB, to: 'prod' }), { allowed: true })
  const pathsOnly = set(ap('prod', 'deny-admin', 'action: DENY\nrules:\n- when:\n  - key: remote.ip\n    values: ["10.0.0.1"]'))
  t.match(decide(pathsOnly, { principal: PROD_API, to: 'prod', port: 80 }), { allowed: false, policy: 'prod/deny-admin', degraded: true }, 'the operation left empty matches everything: the workload is closed')
  const jwt = set(ap('prod', 'deny-anon', 'action: DENY\nrules:\n- from:\n  - source:\n      notRequestPrincipals: ["*"]'))
  t.match(decide(jwt, { principal: PROD_API, to: 'prod' }), { allowed: false, policy: 'prod/deny-anon' })
})

t.test('ALLOW with remoteIpBlocks: that rule matches nothing, the policy still applies (closed), its other rules still allow', async (t) => {
  const s = set(ALLOW_MIXED)
  t.match(decide(s, { principal: STAGE_WEB, to: 'prod' }), { allowed: false, basis: 'no-allow-matched', degraded: true }, 'stage/web: its rule never matches')
  t.match(decide(s, { principal: DEV_WEB, to: 'prod' }), { allowed: false, basis: 'no-allow-matched' }, 'others: closed, as with any ALLOW')
  const api = decide(s, { principal: PROD_API, to: 'prod' })
  t.match(api, { allowed: true, basis: 'allow-matched', policy: 'prod/allow-mixed', rule: 1 }, 'the intact rule allows')
  t.notOk(api.degraded, 'an allow by an intact rule is not marked degraded')
  t.same(s.snapshot.authorizationPolicies[0].spec.rules?.[0].unenforceable, ['spec.rules[0].from[0].source.remoteIpBlocks'])

  const only = set(ap('prod', 'allow-jwt', 'rules:\n- from:\n  - source:\n      requestPrincipals: ["issuer/*"]'))
  t.match(decide(only, { principal: PROD_API, to: 'prod' }), { allowed: false, basis: 'no-allow-matched', degraded: true }, 'an ALLOW that cannot be enforced at all closes its workloads: never "no ALLOW policy applies"')
})

t.test('CUSTOM: enforced as a DENY of its rules (a connection: without its L7 conditions)', async (t) => {
  const s = set(ap('prod', 'ext-authz', 'action: CUSTOM\nprovider:\n  name: opa\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]\n  to:\n  - operation:\n      paths: ["/admin/*"]'))
  t.match(decide(s, { principal: DEV_WEB, to: 'prod' }), { allowed: false, action: 'DENY', basis: 'deny-matched', policy: 'prod/ext-authz', degraded: true, notEvaluated: ['spec.rules[0].to[0].operation.paths'] })
  t.match(decide(s, { principal: PROD_API, to: 'prod' }), { allowed: true })
  t.same(s.snapshot.authorizationPolicies[0].degraded.map((d) => d.kind), ['action', 'ignored'])
})

t.test('AUDIT: does not decide access; reported, not enforced', async (t) => {
  const snapshot = admitDocuments([{ path: FILE, text: ap('prod', 'audit', 'action: AUDIT\nrules:\n- {}') }], { origin: '/policies', generation: 1 })
  t.equal(snapshot.authorizationPolicies.length, 0)
  t.match(snapshot.objects[0], { state: 'degraded', issues: [{ message: /AUDIT does not decide access: the policy is not enforced/ }] })
  t.match(decide(compilePolicySet(snapshot), { principal: DEV_WEB, to: 'prod' }), { allowed: true, basis: 'no-allow-policy' })
})

t.test('targetRefs: the whole namespace (an ALLOW closes it, a DENY denies more)', async (t) => {
  const allow = set(ap('prod', 'allow-to-svc', 'targetRefs:\n- kind: Service\n  group: ""\n  name: db\nrules:\n- from:\n  - source:\n      namespaces: ["prod"]'))
  t.match(decide(allow, { principal: DEV_WEB, to: 'prod', labels: { app: 'web' } }), { allowed: false, basis: 'no-allow-matched', degraded: true }, 'every workload of prod is closed to what the policy does not allow')
  t.match(decide(allow, { principal: PROD_API, to: 'prod', labels: { app: 'web' } }), { allowed: true, basis: 'allow-matched' })
  t.equal(allow.authz.policies[0].scope, 'namespace')
  const deny = set(ap('prod', 'deny-to-gw', 'action: DENY\ntargetRef:\n  kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw\nselector:\n  matchLabels: { app: gw }\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]'))
  t.match(decide(deny, { principal: DEV_WEB, to: 'prod', labels: { app: 'db' } }), { allowed: false, policy: 'prod/deny-to-gw', degraded: true }, 'the selector goes too: the namespace')
})

t.test('mode DISABLE: read as UNSET, so the namespace\'s (or mesh\'s) mode applies, never weaker than leaving it out', async (t) => {
  const s = set(pa('prod', 'default', 'mtls: { mode: STRICT }') + pa('prod', 'db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: DISABLE }\nportLevelMtls:\n  9090: { mode: DISABLE }'))
  t.same(s.mtls.modeFor({ namespace: 'prod', labels: { app: 'db' } }, 9090), { mode: 'STRICT', scope: 'namespace', policy: 'prod/default' })
  const e = explain(s, request({ principal: DEV_WEB, to: 'prod', port: 9090 }))
  t.match(e.degraded, [/^PeerAuthentication prod\/db: spec\.mtls\.mode: read as UNSET.*; spec\.portLevelMtls\.9090\.mode: read as UNSET/])
})

t.test('server-written metadata: ignored with a notice, the policy enforced', async (t) => {
  const text = ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]').replace('  namespace: prod\n', '  namespace: prod\n  uid: 0b7e2d4c\n  resourceVersion: "42"\n  generation: 3\n').replace(/---\n$/, 'status:\n  conditions: []\n')
  const snapshot = admitDocuments([{ path: FILE, text }], { origin: '/policies', generation: 1 })
  t.same(snapshot.objects[0].issues.map((i) => i.path?.join('.')), ['metadata.uid', 'metadata.resourceVersion', 'metadata.generation', 'status'])
  t.equal(snapshot.objects[0].state, 'degraded')
  t.match(decide(compilePolicySet(snapshot), { principal: DEV_WEB, to: 'prod' }), { allowed: false, policy: 'prod/deny-dev' })
  t.notOk(decide(compilePolicySet(snapshot), { principal: DEV_WEB, to: 'prod' }).degraded, 'ignored metadata does not make a decision degraded')
})

t.test('ferry policy check explains it: which fields were left out, and why an ALLOW matches nothing', async (t) => {
  const s = set(ALLOW_MIXED +
    ap('prod', 'deny-post', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]\n      notRequestPrincipals: ["*"]'))
  const denied = explain(s, request({ principal: DEV_WEB, to: 'prod' }))
  t.same(denied.degraded, ['DENY prod/deny-post rule 0: applied without spec.rules[0].from[0].source.notRequestPrincipals (Ferry cannot check them): it matches more connections, so it denies more'])
  const text = explanationText(denied, { cwd: '/', source: 'dev/web', destination: 'prod/db' })
  t.match(text, /decided by {2}DENY policy prod\/deny-post, rule 0[^\n]*\n[\s\S]*degraded {4}DENY prod\/deny-post rule 0: applied without spec\.rules\[0\]\.from\[0\]\.source\.notRequestPrincipals/)
  t.match(text, /rule 0: matches — applied without spec\.rules\[0\]\.from\[0\]\.source\.notRequestPrincipals/)

  const closed = explain(s, request({ principal: STAGE_WEB, to: 'prod' }))
  t.match(closed.decision, { basis: 'no-allow-matched', degraded: true })
  t.same(closed.degraded, ['ALLOW prod/allow-mixed rule 0: matches nothing: Ferry cannot check spec.rules[0].from[0].source.remoteIpBlocks, and an ALLOW rule it cannot fully check never matches'])
  const allowTrace = closed.policies.find((p) => p.policy === 'prod/allow-mixed')!
  t.match(allowTrace.rules[0], { matched: false, note: /^matches nothing/ })
  t.match(explanationText(closed, { cwd: '/', source: 'stage/web', destination: 'prod/db' }), /rule 0: does not match — matches nothing: Ferry cannot check spec\.rules\[0\]\.from\[0\]\.source\.remoteIpBlocks/)
  t.same(explain(s, request({ principal: PROD_API, to: 'prod', port: 80 })).degraded, [], 'a decision no degradation played a part in says nothing')
})
