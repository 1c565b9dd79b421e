import t from 'tap'
import { checkConnection, configView } from '../../src/policy/check'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { ap, FILE, policySet } from './helpers'

// One `ferry policy check` on a PolicySet, as both the CLI (--dir) and the agent's
// /debug/authz run it; and the snapshot view /debug/config serves.

const YAML = ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]') +
  ap('prod', 'dry', 'action: DENY\nrules:\n- {}', { annotations: { 'istio.io/dry-run': 'true' } }) +
  `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: { name: default, namespace: prod }
spec:
  mtls: { mode: PERMISSIVE }
`
const cluster = parseClusterList(listText([
  namespaceObj('dev'),
  namespaceObj('prod'),
  podObj({ name: 'web', namespace: 'dev', ips: ['10.244.0.5'], serviceAccountName: 'web', labels: { app: 'web' } }),
  podObj({ name: 'db-0', namespace: 'prod', ips: ['10.244.1.9'], labels: { app: 'db' }, deployment: 'db', ports: [{ name: 'pg', containerPort: 5432 }] }),
  podObj({ name: 'db-1', namespace: 'prod', ips: ['10.244.1.10'], labels: { app: 'db' }, deployment: 'db', ports: [{ name: 'pg', containerPort: 5432 }] }),
  serviceObj({ name: 'db', namespace: 'prod', clusterIPs: ['10.96.0.20'], selector: { app: 'db' }, ports: [{ name: 'postgres', port: 15432, targetPort: 'pg' }] })
]), 'cluster.json', 1)

t.test('checkConnection: resolves the names, explains each distinct destination workload', async (t) => {
  const set = policySet(YAML)
  const r = checkConnection(set, 'dev/web', 'prod/db:postgres', { cluster, trustDomain: 'cluster.local' })
  t.equal(r.allowed, false)
  t.equal(r.source, 'pod dev/web (spiffe://cluster.local/ns/dev/sa/web, 10.244.0.5)')
  t.equal(r.results.length, 1, 'db-0 and db-1 share labels and port: one workload')
  t.match(r.results[0].destination, /^service prod\/db:15432 → pod db-0 \(workload db\) port 5432$/)
  t.match(r.results[0].explanation.decision, { basis: 'deny-matched', policy: 'prod/deny-dev' })
  t.equal(checkConnection(set, 'cluster.local/ns/prod/sa/api', 'prod/app=db:5432', { cluster: null, trustDomain: 'cluster.local' }).allowed, true)
  t.throws(() => checkConnection(set, 'dev/nobody', 'prod/app=db:5432', { cluster, trustDomain: 'cluster.local' }), { code: 'FERRY_ERR_WORKLOAD_NOT_FOUND' })
  t.throws(() => checkConnection(set, 'dev/web', 'prod/db:5432', { cluster: null, trustDomain: 'cluster.local' }), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('configView: every resource with its file, line and what it does; plain JSON', async (t) => {
  const v = configView(policySet(YAML).snapshot)
  t.same(v.resources.map((r) => [r.kind, r.ref, r.summary, r.file, r.line]), [
    ['AuthorizationPolicy', 'prod/deny-dev', 'DENY', FILE, 1],
    ['AuthorizationPolicy', 'prod/dry', 'DENY [dry-run]', FILE, 13],
    ['PeerAuthentication', 'prod/default', 'PERMISSIVE', FILE, 25]
  ])
  t.match(v, { generation: 1, origin: '/policies', rootNamespace: 'ferry-system', files: [FILE] })
  t.same(JSON.parse(JSON.stringify(v)), v, 'survives JSON')
})
