import t from 'tap'
import type { Pod } from '../../src/discovery/model'
import { Conn } from '../../src/proxy/conn'
import { identifyMeshSource } from '../../src/proxy/identify'

// identifyMeshSource: the principal is proven by mTLS, the address is only what the peer
// node says. An address that belongs to a pod of another identity must not reach the
// authorize stage (ipBlocks would otherwise trust a borrowed IP).

function pod (name: string, ip: string, sa: string): Pod {
  return {
    uid: `uid-${name}`, name, namespace: 'prod', nodeName: 'n1', serviceAccountName: sa,
    labels: {}, annotations: {}, podIPs: [ip], hostIPs: ['172.30.0.1'], ports: [], probePorts: [], ready: true, phase: 'Running', hostNetwork: false, workload: name
  }
}

const pods = [pod('web', '10.244.1.5', 'web'), pod('db', '10.244.1.6', 'db')]
const lookup = { podByIP: (ip: string) => pods.find((p) => p.podIPs.includes(ip)) }
const identities = { spiffeIdOf: (p: Pod) => `spiffe://cluster.local/ns/${p.namespace}/sa/${p.serviceAccountName}`, svidFor: () => null }
const WEB = 'spiffe://cluster.local/ns/prod/sa/web'

function identify (address: string | null): Conn {
  const conn = new Conn('inbound', null, () => 0)
  identifyMeshSource(conn, address, 0, WEB, lookup, identities)
  return conn
}

t.test('an address of a pod with the proven identity names that pod', async (t) => {
  const c = identify('10.244.1.5')
  t.equal(c.source.ip, '10.244.1.5')
  t.equal(c.source.pod, 'web')
  t.equal(c.sourcePrincipal, WEB)
})

t.test('an address of a pod with another identity is dropped, not trusted', async (t) => {
  const c = identify('10.244.1.6')
  t.equal(c.source.ip, '', 'the borrowed address does not reach ipBlocks')
  t.equal(c.source.pod, null, 'no pod is named')
  t.equal(c.sourcePrincipal, WEB, 'the proven principal stays')
})

t.test('an address of no known pod is kept as said; none gives none', async (t) => {
  t.equal(identify('192.0.2.7').source.ip, '192.0.2.7')
  t.equal(identify(null).source.ip, '')
})
