import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { inboundMode } from '../../src/discovery/mesh-policy'
import { listText, namespaceObj, podObj } from './fixture'

// The inbound mode (STRICT / PERMISSIVE) of a pod: one function decides, from the pod's
// annotation, else its namespace's label, else STRICT; an invalid value fails closed.
// And the node a pod runs on (status.hostIP[s]), which the proxy dials for the tunnel.

function decide (nsLabels: Record<string, string> | null, annotations: Record<string, string>): ReturnType<typeof inboundMode> {
  const s = parseClusterList(listText([...(nsLabels === null ? [] : [namespaceObj('app', nsLabels)]), podObj({ name: 'p', annotations })]), 'f', 1)
  return inboundMode(s.pods[0], s.namespaces[0])
}

t.test('inbound mode: STRICT by default; the namespace label, then the pod annotation, override it', async (t) => {
  const key = 'ferry.dev/inbound-mode'
  t.same(decide({}, {}), { mode: 'STRICT', scope: 'default' })
  t.same(decide(null, {}), { mode: 'STRICT', scope: 'default' }, 'no Namespace object')
  t.same(decide({ [key]: 'PERMISSIVE' }, {}), { mode: 'PERMISSIVE', scope: 'namespace' })
  t.same(decide({ [key]: 'PERMISSIVE' }, { [key]: 'STRICT' }), { mode: 'STRICT', scope: 'workload' })
  t.same(decide({ [key]: 'STRICT' }, { [key]: 'PERMISSIVE' }), { mode: 'PERMISSIVE', scope: 'workload' })
  t.ok(Object.isFrozen(decide({}, { [key]: 'PERMISSIVE' })), 'shared frozen decisions')
})

t.test('inbound mode: an invalid value is never read as PERMISSIVE; the decision says why', async (t) => {
  const key = 'ferry.dev/inbound-mode'
  const pod = decide({ [key]: 'PERMISSIVE' }, { [key]: 'permissive' })
  t.match(pod, { mode: 'STRICT', scope: 'workload', invalid: /pod app\/p: annotation ferry\.dev\/inbound-mode: "permissive" is not STRICT or PERMISSIVE; using STRICT/ })
  const ns = decide({ [key]: 'DISABLE' }, {})
  t.match(ns, { mode: 'STRICT', scope: 'namespace', invalid: /namespace app: label ferry\.dev\/inbound-mode: "DISABLE"/ })
})

t.test('host IPs: status.hostIPs, else status.hostIP, canonical; empty when absent; a bad one names the field', async (t) => {
  const pod = (status: Record<string, unknown>): Record<string, unknown> => {
    const p = podObj({ name: 'p', ips: ['10.244.1.2'] }) as { status: Record<string, unknown> }
    return { ...p, status: { ...p.status, ...status } }
  }
  const parse = (status: Record<string, unknown>): readonly string[] => parseClusterList(listText([pod(status)]), 'f', 1).pods[0].hostIPs
  t.same(parse({ hostIP: '172.30.0.1', hostIPs: [{ ip: '172.30.0.1' }, { ip: 'FD30::0:1' }] }), ['172.30.0.1', 'fd30::1'])
  t.same(parse({ hostIP: '172.30.0.2' }), ['172.30.0.2'])
  t.same(parse({}), [])
  t.throws(() => parse({ hostIPs: [{ ip: 'node-1' }] }), { code: 'FERRY_ERR_CONFIG', message: /field status\.hostIPs\[0\]\.ip: "node-1" is not an IP address/ })
})

t.test('inbound mode: a PeerAuthentication that sets a mode overrides the annotation and the label; its default does not', async (t) => {
  const key = 'ferry.dev/inbound-mode'
  const s = parseClusterList(listText([namespaceObj('app', { [key]: 'PERMISSIVE' }), podObj({ name: 'p', annotations: { [key]: 'PERMISSIVE' } })]), 'f', 1)
  t.same(inboundMode(s.pods[0], s.namespaces[0], { mode: 'STRICT', scope: 'namespace', policy: 'app/strict' }), { mode: 'STRICT', scope: 'namespace', policy: 'app/strict' })
  t.same(inboundMode(s.pods[0], s.namespaces[0], { mode: 'STRICT', scope: 'default' }), { mode: 'PERMISSIVE', scope: 'workload' }, 'no PeerAuthentication applies: labels and annotations decide')
  t.same(inboundMode(s.pods[0], s.namespaces[0], null), { mode: 'PERMISSIVE', scope: 'workload' })
})
