import t from 'tap'
import { BalancerPool, createBalancer, RoundRobin } from '../../src/balancer'

const ep = (id: string): { id: string } => ({ id })
const picks = (n: number, pick: () => { id: string } | null): Array<string | undefined> => Array.from({ length: n }, () => pick()?.id)

t.test('round robin cycles through endpoints in order', async (t) => {
  const rr = new RoundRobin<{ id: string }>()
  t.equal(rr.pick(), null, 'no endpoints')
  rr.update([ep('a'), ep('b'), ep('c')])
  t.same(picks(7, () => rr.pick()), ['a', 'b', 'c', 'a', 'b', 'c', 'a'])
})

t.test('an update carries on from the endpoint that was next, if it is still there', async (t) => {
  const rr = new RoundRobin<{ id: string }>()
  rr.update([ep('a'), ep('b'), ep('c')])
  rr.pick() // a; next is b
  rr.update([ep('a'), ep('b'), ep('c'), ep('d')])
  t.same(picks(4, () => rr.pick()), ['b', 'c', 'd', 'a'])
  rr.pick() // b; next is c
  rr.update([ep('a'), ep('b'), ep('d')]) // c removed: continue at the same position
  t.same(picks(3, () => rr.pick()), ['d', 'a', 'b'])
  rr.update([])
  t.equal(rr.pick(), null)
})

t.test('the pool keeps a balancer per key and its position across unchanged snapshots', async (t) => {
  const pool = new BalancerPool<{ id: string }>('round_robin')
  const svc = { key: 'app/web:80/v4', endpoints: [ep('a'), ep('b'), ep('c')] }
  pool.sync([svc])
  t.equal(pool.pick('app/web:80/v4')?.id, 'a')
  // A new snapshot with equal (but not identical) endpoint lists must not reset the rotation.
  pool.sync([{ key: 'app/web:80/v4', endpoints: [ep('a'), ep('b'), ep('c')] }, { key: 'app/db:5432/v4', endpoints: [ep('x')] }])
  t.equal(pool.pick('app/web:80/v4')?.id, 'b', 'position survives an unchanged snapshot')
  t.equal(pool.pick('app/db:5432/v4')?.id, 'x')
  t.equal(pool.size(), 2)
  pool.sync([{ key: 'app/db:5432/v4', endpoints: [ep('x')] }])
  t.equal(pool.size(), 1, 'balancers of vanished service ports are dropped')
  t.equal(pool.pick('app/web:80/v4'), null)
  t.equal(pool.pick('unknown'), null)
})

t.test('balancers are created by registered name; an unknown name names the known ones', async (t) => {
  t.type(createBalancer('round_robin'), RoundRobin)
  t.throws(() => createBalancer('maglev'), { code: 'FERRY_ERR_INVALID_ARG', message: /unknown balancer "maglev" \(known: round_robin, least_request, random\)/ })
})
