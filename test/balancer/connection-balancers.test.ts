import t from 'tap'
import { BalancerPool, createBalancer, LeastConnections, RandomConnections } from '../../src/balancer'
import { connectionBalancerFor } from '../../src/balancer/connection-policy'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { RouteTable } from '../../src/proxy'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { seededRandom } from '../helpers/seeded-random'

interface Ep { readonly id: string }
const eps = (...ids: string[]): Ep[] => ids.map((id) => ({ id }))

t.test('least_request (L4): the endpoint with the fewest open connections; equals in turn', async (t) => {
  const b = new LeastConnections<Ep>()
  t.equal(b.pick(), null)
  b.update(eps('a', 'b', 'c'))
  const seq = (n: number): string[] => Array.from({ length: n }, () => b.pick()!.id)
  t.same(seq(3), ['a', 'b', 'c'], 'three idle endpoints take one connection each, in turn')
  b.release({ id: 'b' })
  t.same(seq(3), ['b', 'c', 'a'], 'b (its connection closed: none open), then the others in turn after it')
  t.same(Object.fromEntries(b.open()), { a: 2, b: 1, c: 2 })
  t.same(seq(1), ['b'], 'the one with fewest')
  // Counts survive an update that keeps the endpoint; a newcomer has none.
  b.update(eps('a', 'b', 'c', 'd'))
  t.same(Object.fromEntries(b.open()), { a: 2, b: 2, c: 2, d: 0 })
  t.same(seq(2), ['d', 'd'], 'the newcomer until it catches up')
  t.same(seq(4), ['a', 'b', 'c', 'd'])
  // An endpoint that leaves takes its count with it; unknown releases are ignored; never below zero.
  b.update(eps('a', 'b'))
  b.release({ id: 'c' })
  for (let i = 0; i < 5; i++) b.release({ id: 'a' })
  t.same(Object.fromEntries(b.open()), { a: 0, b: 3 }, 'c gone, a released to zero')
})

t.test('least_request (L4) under churn: counts follow the connections really open', async (t) => {
  const b = new LeastConnections<Ep>()
  b.update(eps('a', 'b', 'c', 'd'))
  const random = seededRandom(21)
  const open: Ep[] = []
  for (let i = 0; i < 2_000; i++) {
    if (open.length > 0 && random() < 0.45) b.release(open.splice(Math.floor(random() * open.length), 1)[0])
    else open.push(b.pick()!)
    const counts = [...b.open().values()]
    // Releases at random make it uneven; picks always fill the emptiest: it never gets worse than the releases made it.
    if (Math.max(...counts) - Math.min(...counts) > 12) { t.fail(`uneven: ${counts.join(',')}`); break }
  }
  const real = new Map<string, number>()
  for (const e of open) real.set(e.id, (real.get(e.id) ?? 0) + 1)
  t.same(Object.fromEntries(b.open()), Object.fromEntries(['a', 'b', 'c', 'd'].map((id) => [id, real.get(id) ?? 0])), 'counts match the connections really open')
})

t.test('random (L4): uniform over the endpoints', async (t) => {
  const b = new RandomConnections<Ep>(seededRandom(5))
  t.equal(b.pick(), null)
  b.update(eps('a', 'b', 'c'))
  const counts = new Map<string, number>()
  for (let i = 0; i < 6_000; i++) { const id = b.pick()!.id; counts.set(id, (counts.get(id) ?? 0) + 1) }
  for (const id of ['a', 'b', 'c']) t.ok(Math.abs(counts.get(id)! / 6_000 - 1 / 3) < 0.03, `${id}: ${counts.get(id)}`)
})

t.test('the registry knows round_robin, least_request and random; the DestinationRule policies map onto them', async (t) => {
  t.type(createBalancer('least_request'), LeastConnections)
  t.type(createBalancer('random'), RandomConnections)
  t.equal(connectionBalancerFor({ type: 'ROUND_ROBIN' }), 'round_robin')
  t.equal(connectionBalancerFor({ type: 'LEAST_REQUEST' }), 'least_request')
  t.equal(connectionBalancerFor({ type: 'RANDOM' }), 'random')
  t.equal(connectionBalancerFor({ type: 'P2C_PEAK_EWMA' }), null, 'the default: connections stay round robin')
  t.equal(connectionBalancerFor({ type: 'CONSISTENT_HASH', key: { sourceIp: true } }), null)
})

t.test('the pool uses each key\'s policy, replaces a balancer when its policy changes, and passes releases on', async (t) => {
  const policies = new Map<string, string>([['app/db:5432/v4', 'least_request']])
  const pool = new BalancerPool<Ep>('round_robin', (key) => policies.get(key) ?? null)
  const sets = [{ key: 'app/web:80/v4', endpoints: eps('a', 'b') }, { key: 'app/db:5432/v4', endpoints: eps('x', 'y') }]
  pool.sync(sets)
  t.equal(pool.policyOfKey('app/web:80/v4'), 'round_robin')
  t.equal(pool.policyOfKey('app/db:5432/v4'), 'least_request')
  const x = pool.pick('app/db:5432/v4')!
  t.not(pool.pick('app/db:5432/v4')!.id, x.id, 'the other one: x has a connection open')
  pool.release('app/db:5432/v4', x)
  pool.release('app/web:80/v4', x) // round robin has no release: nothing happens
  t.equal(pool.pick('app/db:5432/v4')!.id, x.id, 'x again once its connection closed')
  // A new policy, then a sync with the same endpoints: a fresh balancer of the new kind.
  policies.set('app/db:5432/v4', 'random')
  policies.set('app/web:80/v4', 'no-such-balancer')
  pool.sync(sets)
  t.equal(pool.policyOfKey('app/db:5432/v4'), 'random')
  t.equal(pool.policyOfKey('app/web:80/v4'), 'round_robin', 'an unknown name keeps the default')
  t.ok(pool.pick('app/db:5432/v4') !== null, 'the new balancer has the endpoints')
})

t.test('the route table takes per-service policies: setPolicyFor on a configuration change', async (t) => {
  const items = [
    namespaceObj('app'),
    podObj({ name: 's1', ips: ['10.244.0.11'], labels: { app: 's' }, ports: [{ name: 'tcp', containerPort: 9000 }] }),
    podObj({ name: 's2', ips: ['10.244.0.12'], labels: { app: 's' }, ports: [{ name: 'tcp', containerPort: 9000 }] }),
    serviceObj({ name: 's', clusterIPs: ['10.96.0.20'], selector: { app: 's' }, ports: [{ name: 'tcp', port: 9000, targetPort: 'tcp' }] })
  ]
  const snapshot = parseClusterList(listText(items), 'test', 1)
  const routes = new RouteTable()
  routes.update(snapshot)
  const entry = routes.index.lookup('10.96.0.20', 9000)!
  // Round robin by default: alternates, whatever is open.
  const rr = [routes.pick(entry.key)!.address, routes.pick(entry.key)!.address, routes.pick(entry.key)!.address]
  t.same(rr, ['10.244.0.11', '10.244.0.12', '10.244.0.11'])
  // least_request for this service: a connection held open on one endpoint sends the next to the other.
  routes.setPolicyFor((key) => key === entry.key ? 'least_request' : null)
  const held = routes.pick(entry.key)!
  const next = routes.pick(entry.key)!
  t.not(next.address, held.address, 'the endpoint with no connection open')
  routes.release(entry.key, held)
  t.equal(routes.pick(entry.key)!.address, held.address, 'the endpoint whose connection closed')
  // A snapshot that changes nothing keeps the balancer (and its counts).
  routes.update(snapshot)
  t.ok(routes.pick(entry.key) !== null)
  t.ok(routes.releaseFor(entry.key) !== null, 'least_request wants to hear of closed connections')
  routes.setPolicyFor(() => null)
  t.equal(routes.releaseFor(entry.key), null, 'round robin does not')
})
