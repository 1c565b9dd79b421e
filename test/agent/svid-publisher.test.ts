import t from 'tap'
import { SvidPublisher } from '../../src/agent/svid-publisher'
import { parseClusterList } from '../../src/discovery/cluster-list'
import type { Pod } from '../../src/discovery/model'
import type { Svid } from '../../src/identity/svid'
import type { Publication } from '../../src/worker/protocol'
import { listText, podObj } from '../discovery/fixture'
import { testCa } from '../identity/certs'
import { identities, idOf } from '../helpers/mesh-harness'

// The main thread publishes the node's certificates to every worker (a structured clone
// of every SVID, per worker) when an identity comes or goes or a certificate arrives or is
// rotated — not on every enrollment change. Guards that enrolling more pods of identities
// already served publishes nothing, and that each real change publishes the whole state
// (a restarted worker is replayed the latest publication alone).

function pods (specs: Array<{ name: string, sa: string }>): Pod[] {
  return [...parseClusterList(listText(specs.map((s) => podObj({ name: s.name, serviceAccountName: s.sa }))), 't', 1).pods]
}

t.test('publishes when an identity or a certificate changes, and only then', async (t) => {
  const ca = await testCa()
  const svids = new Map<string, Svid>()
  const sent: Array<Extract<Publication, { kind: 'svids' }>> = []
  const publisher = new SvidPublisher(identities(svids), (p) => { sent.push(p) })

  publisher.update(pods([{ name: 'a1', sa: 'a' }]))
  t.same(sent.map((p) => [p.served, p.svids.length]), [[[idOf('app', 'a')], 0]], 'a new identity, no certificate yet: published (served, nothing to present)')

  const a = await ca.svid('app/a')
  svids.set(idOf('app', 'a'), a)
  publisher.update(pods([{ name: 'a1', sa: 'a' }]))
  t.equal(sent.length, 2, 'its first certificate: published')
  t.equal(sent[1].svids[0][1], a)

  for (let n = 2; n <= 20; n++) publisher.update(pods(Array.from({ length: n }, (_, i) => ({ name: `a${i}`, sa: 'a' }))))
  t.equal(sent.length, 2, '19 more pods of the same identity: nothing published')

  const b = await ca.svid('app/b')
  svids.set(idOf('app', 'b'), b)
  publisher.update(pods([{ name: 'a1', sa: 'a' }, { name: 'b1', sa: 'b' }]))
  t.same(sent[2].served, [idOf('app', 'a'), idOf('app', 'b')], 'a second identity: published, with every certificate in use')
  t.equal(sent[2].svids.length, 2)

  const rotated = await ca.svid('app/a')
  svids.set(idOf('app', 'a'), rotated)
  publisher.update(pods([{ name: 'a1', sa: 'a' }, { name: 'b1', sa: 'b' }]))
  t.equal(sent.length, 4, 'a rotation: published')
  t.equal(sent[3].svids.find(([id]) => id === idOf('app', 'a'))?.[1], rotated)

  publisher.update(pods([{ name: 'b1', sa: 'b' }]))
  t.same(sent[4].served, [idOf('app', 'b')], 'the last pod of an identity left: published without it')
  t.equal(sent.length, 5)
})
