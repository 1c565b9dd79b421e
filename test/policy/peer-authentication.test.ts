import t from 'tap'
import { policySet } from './helpers'

// PeerAuthentication: the most specific level that sets a mode wins; UNSET inherits;
// Ferry's default is STRICT.

function pa (ns: string, name: string, spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: ${name}, namespace: ${ns} }\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n---\n`
}

const db = { namespace: 'prod', labels: { app: 'db' } }

t.test('no PeerAuthentication: STRICT by default', async (t) => {
  t.same(policySet('').mtls.modeFor(db), { mode: 'STRICT', scope: 'default' })
})

t.test('mesh-wide, namespace-wide and workload levels, most specific first', async (t) => {
  const set = policySet(
    pa('ferry-system', 'default', 'mtls: { mode: PERMISSIVE }') +
    pa('prod', 'default', 'mtls: { mode: STRICT }') +
    pa('prod', 'db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: PERMISSIVE }'))
  t.same(set.mtls.modeFor({ namespace: 'dev', labels: {} }), { mode: 'PERMISSIVE', scope: 'mesh', policy: 'ferry-system/default' })
  t.same(set.mtls.modeFor({ namespace: 'prod', labels: { app: 'web' } }), { mode: 'STRICT', scope: 'namespace', policy: 'prod/default' })
  t.same(set.mtls.modeFor(db), { mode: 'PERMISSIVE', scope: 'workload', policy: 'prod/db' })
  t.same(set.mtls.modeFor({ namespace: 'ferry-system', labels: {} }), { mode: 'PERMISSIVE', scope: 'mesh', policy: 'ferry-system/default' })
})

t.test('UNSET (or no mtls) inherits from the level above', async (t) => {
  const set = policySet(
    pa('prod', 'default', 'mtls: { mode: PERMISSIVE }') +
    pa('prod', 'db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: UNSET }') +
    pa('prod', 'cache', 'selector: { matchLabels: { app: cache } }\nportLevelMtls:\n  6379: { mode: STRICT }'))
  t.same(set.mtls.modeFor(db), { mode: 'PERMISSIVE', scope: 'namespace', policy: 'prod/default' })
  t.same(set.mtls.modeFor({ namespace: 'prod', labels: { app: 'cache' } }), { mode: 'PERMISSIVE', scope: 'namespace', policy: 'prod/default' })
  t.same(policySet(pa('prod', 'default', '{}')).mtls.modeFor(db), { mode: 'STRICT', scope: 'default' })
})

t.test('portLevelMtls overrides the workload mode on its port only', async (t) => {
  const set = policySet(pa('prod', 'db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: STRICT }\nportLevelMtls:\n  9090: { mode: PERMISSIVE }\n  5432: { mode: UNSET }'))
  t.same(set.mtls.modeFor(db, 9090), { mode: 'PERMISSIVE', scope: 'port', policy: 'prod/db' })
  t.same(set.mtls.modeFor(db, 5432), { mode: 'STRICT', scope: 'workload', policy: 'prod/db' })
  t.same(set.mtls.modeFor(db), { mode: 'STRICT', scope: 'workload', policy: 'prod/db' })
})

t.test('several workload policies select one workload: the first by name is in force', async (t) => {
  const set = policySet(
    pa('prod', 'b-db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: STRICT }') +
    pa('prod', 'a-data', 'selector: { matchLabels: { tier: data } }\nmtls: { mode: PERMISSIVE }'))
  const w = { namespace: 'prod', labels: { app: 'db', tier: 'data' } }
  t.same(set.mtls.modeFor(w), { mode: 'PERMISSIVE', scope: 'workload', policy: 'prod/a-data' })
  t.same(set.mtls.workloadPolicies(w).map((p) => p.ref), ['prod/a-data', 'prod/b-db'])
})

t.test('the root namespace is configurable', async (t) => {
  const set = policySet(pa('istio-system', 'default', 'mtls: { mode: PERMISSIVE }'), { rootNamespace: 'istio-system' })
  t.same(set.mtls.modeFor(db), { mode: 'PERMISSIVE', scope: 'mesh', policy: 'istio-system/default' })
})
