import t from 'tap'
import { explain } from '../../src/policy/explain'
import { explanationText } from '../../src/policy/explain-text'
import { ap, DEV_WEB, FILE, PROD_API, policySet, request } from './helpers'

// explain() reports the evaluator's own decision, and a trace that agrees with it, with
// every condition located in its file.

const YAML = ap('ferry-system', 'allow-mesh', 'action: ALLOW\nrules:\n- from:\n  - source:\n      principals: ["cluster.local/*"]') +
  ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]\n  to:\n  - operation:\n      ports: ["5432"]') +
  ap('prod', 'audit-ssh', 'action: DENY\nrules:\n- to:\n  - operation:\n      ports: ["22"]', { annotations: { 'istio.io/dry-run': 'true' } })

t.test('a DENY: the deciding rule and conditions, located in the file', async (t) => {
  const set = policySet(YAML)
  const e = explain(set, request({ principal: DEV_WEB, ip: '10.0.0.5', to: 'prod' }))
  t.equal(e.allowed, false)
  t.match(e.decision, { basis: 'deny-matched', policy: 'prod/deny-dev', rule: 0 })
  t.same(e.decidedAt, { file: FILE, line: 21 })
  t.same(e.decidedBy.map((c) => [c.field, c.location.line]), [
    ['spec.rules[0].from[0].source.namespaces', 23],
    ['spec.rules[0].to[0].operation.ports', 26]
  ])
  t.match(e.decidedBy[0].detail, 'source namespace "dev" matches namespaces[0] "dev"')
  t.same(e.policies.map((p) => [p.policy, p.scope, p.matchedRule, p.dryRun]), [
    ['ferry-system/allow-mesh', 'mesh', 0, false],
    ['prod/audit-ssh', 'namespace', null, true],
    ['prod/deny-dev', 'namespace', 0, false]
  ])
  t.same(e.request.source, { principal: DEV_WEB, namespace: 'dev', ip: '10.0.0.5' })
  t.same(e.mtls, { mode: 'STRICT', scope: 'default' })
  t.same(JSON.parse(JSON.stringify(e)), e, 'plain JSON-able data')
})

t.test('a default decision traces why every ALLOW failed', async (t) => {
  const set = policySet(YAML)
  const e = explain(set, request({ ip: '10.0.0.5', to: 'prod', port: 22 }))
  t.match(e.decision, { allowed: false, basis: 'no-allow-matched', dryRun: [{ policy: 'prod/audit-ssh', matched: true }], dryRunAllowed: false })
  t.same(e.decidedBy, [])
  const allow = e.policies[0]
  t.equal(allow.rules[0].matched, false)
  t.match(allow.rules[0].from?.[0].conditions[0], { matched: false, detail: /the source has no principal .*principals cannot match/ })
  const text = explanationText(e, { cwd: '/', source: 'address 10.0.0.5', destination: 'prod/{app=db}' })
  t.match(text, /^DENIED  address 10.0.0.5\n/)
  t.match(text, /decided by {2}default: 1 ALLOW policy applies/)
  t.match(text, /dry-run {5}DENY prod\/audit-ssh: rule 0 matches/)
  t.match(text, /✗ from\[0\]\.source\.principals: the source has no principal/)
})

t.test('the trace agrees with the decision on every request of a grid', async (t) => {
  const set = policySet(YAML + ap('prod', 'allow-api', 'action: ALLOW\nselector:\n  matchLabels: { app: db }\nrules:\n- from:\n  - source:\n      notIpBlocks: ["192.168.0.0/16"]\n      principals: ["*/sa/api"]'))
  let n = 0
  for (const principal of [DEV_WEB, PROD_API, null]) {
    for (const ip of ['10.0.0.5', '192.168.3.4', null]) {
      for (const port of [22, 5432, 8080]) {
        for (const labels of [{ app: 'db' }, { app: 'web' }]) {
          const req = request({ principal, ip, to: 'prod', port, labels })
          const e = explain(set, req)
          t.same(e.decision, set.authz.evaluate(req))
          for (const p of e.policies) {
            if (p.policy === e.decision.policy && !p.dryRun) t.equal(p.matchedRule, e.decision.rule, 'the deciding policy\'s first matching rule')
          }
          if (e.decision.basis === 'no-allow-matched') t.ok(e.policies.filter((p) => p.action === 'ALLOW' && !p.dryRun).every((p) => p.matchedRule === null), 'no enforced ALLOW matched')
          if (e.decision.basis !== 'deny-matched') t.ok(e.policies.filter((p) => p.action === 'DENY' && !p.dryRun).every((p) => p.matchedRule === null), 'no enforced DENY matched')
          n++
        }
      }
    }
  }
  t.equal(n, 54)
})
