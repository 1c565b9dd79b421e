import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { meshDecision } from '../../src/discovery/mesh-policy'
import type { ClusterSnapshot } from '../../src/discovery/model'
import { isFerryError } from '../../src/errors'
import { listText, namespaceObj, podObj } from './fixture'

function snap (nsLabels: Record<string, string>, annotations: Record<string, string>): ClusterSnapshot {
  return parseClusterList(listText([namespaceObj('app', nsLabels), podObj({ name: 'p', annotations })]), 'f', 1)
}
function decide (nsLabels: Record<string, string>, annotations: Record<string, string>): ReturnType<typeof meshDecision> {
  const s = snap(nsLabels, annotations)
  return meshDecision(s.pods[0], s.namespaces[0])
}

t.test('enrollment rule: namespace label, pod opt-out, pod opt-in', async (t) => {
  const on = { 'ferry.dev/mesh': 'enabled' }
  t.equal(decide(on, {}).meshed, true, 'meshed namespace')
  t.equal(decide(on, { 'ferry.dev/mesh': 'disabled' }).meshed, false, 'pod opts out')
  t.equal(decide({}, { 'ferry.dev/mesh': 'enabled' }).meshed, true, 'pod opts in')
  t.equal(decide({}, {}).meshed, false, 'neither')
  t.equal(decide({ 'ferry.dev/mesh': 'disabled' }, {}).meshed, false, 'namespace label other than enabled')
  const s = snap({}, { 'ferry.dev/mesh': 'enabled' })
  t.equal(meshDecision(s.pods[0], undefined).meshed, true, 'opt-in works without a Namespace object')
})

t.test('excluded ports are parsed, de-duplicated and sorted', async (t) => {
  const d = decide({ 'ferry.dev/mesh': 'enabled' }, { 'ferry.dev/exclude-outbound-ports': ' 8081, 443,8081', 'ferry.dev/exclude-inbound-ports': '' }) as any
  t.same(d.excludeOutboundPorts, [443, 8081])
  t.same(d.excludeInboundPorts, [])
  t.equal(d.error, undefined)
})

t.test('invalid excluded ports: the decision carries a clear error and no port lists', async (t) => {
  for (const bad of ['80,abc', '0', '65536', '80,,81', '-1', '8080.5']) {
    const d = decide({ 'ferry.dev/mesh': 'enabled' }, { 'ferry.dev/exclude-inbound-ports': bad }) as any
    t.equal(d.meshed, true)
    t.ok(isFerryError(d.error, 'FERRY_ERR_CONFIG'), `${bad}: error`)
    t.match(d.error.message, /pod app\/p: annotation ferry\.dev\/exclude-inbound-ports: ".*" is not a port number/)
    t.equal(d.excludeInboundPorts, undefined, 'nothing half-parsed')
  }
})

t.test('an unmeshed pod is not checked for annotations', async (t) => {
  t.same(decide({}, { 'ferry.dev/exclude-inbound-ports': 'junk' }), { meshed: false })
})
