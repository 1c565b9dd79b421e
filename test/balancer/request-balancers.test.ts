import t from 'tap'
import type { LoadBalancerPolicy } from '../../src/routing/model'
import { createRequestBalancer, LeastRequestBalancer, PeakEwmaBalancer, RandomBalancer, RingHashBalancer, RoundRobinRequestBalancer, type PickInput, type RequestBalancer } from '../../src/balancer'
import { FakeClock, seededRandom } from '../helpers/seeded-random'

interface Ep { readonly id: string }
const eps = (...ids: string[]): Ep[] => ids.map((id) => ({ id }))
const any = (hash: string | null = null): PickInput<Ep> => ({ eligible: () => true, hash })
const except = (ids: string[], hash: string | null = null): PickInput<Ep> => ({ eligible: (e) => !ids.includes(e.id), hash })

const POLICIES: LoadBalancerPolicy[] = [
  { type: 'P2C_PEAK_EWMA' },
  { type: 'LEAST_REQUEST' },
  { type: 'RANDOM' },
  { type: 'ROUND_ROBIN' },
  { type: 'CONSISTENT_HASH', key: { header: 'x-user' } }
]

t.test('the factory makes the balancer each policy names', async (t) => {
  const made = POLICIES.map((p) => createRequestBalancer<Ep>(p))
  t.type(made[0], PeakEwmaBalancer)
  t.type(made[1], LeastRequestBalancer)
  t.type(made[2], RandomBalancer)
  t.type(made[3], RoundRobinRequestBalancer)
  t.type(made[4], RingHashBalancer)
})

for (const policy of POLICIES) {
  t.test(`${policy.type}: no endpoints or none eligible → null; only eligible endpoints are picked`, async (t) => {
    const clock = new FakeClock()
    const b = createRequestBalancer<Ep>(policy, { random: seededRandom(7), now: clock.now })
    t.equal(b.pick(any()), null, 'no endpoints')
    t.equal(b.pick(any('alice')), null, 'no endpoints, with a hash input')
    b.update(eps('a', 'b', 'c', 'd'))
    t.equal(b.pick(except(['a', 'b', 'c', 'd'])), null, 'none eligible')
    t.equal(b.pick(except(['a', 'b', 'c', 'd'], 'alice')), null, 'none eligible, with a hash input')
    const seen = new Map<string, number>()
    for (let i = 0; i < 400; i++) {
      const e = b.pick(except(['b', 'd'], i % 2 === 0 ? `user-${i}` : null))
      t.ok(e !== null && (e.id === 'a' || e.id === 'c'), 'an eligible endpoint') || t.bailout()
      seen.set(e!.id, (seen.get(e!.id) ?? 0) + 1)
      b.place(e!, clock.ms).end(clock.ms + 1, false)
      clock.advance(2)
    }
    t.equal(seen.size, 2, 'both eligible endpoints are used')
    for (let i = 0; i < 20; i++) t.equal(b.pick(except(['a', 'b', 'd'], `k${i}`))?.id, 'c', 'the only eligible one')
    b.update([])
    t.equal(b.pick(any()), null, 'emptied')
  })

  t.test(`${policy.type}: describe() shows each endpoint's pending requests; end() counts once`, async (t) => {
    const clock = new FakeClock()
    const b = createRequestBalancer<Ep>(policy, { random: seededRandom(3), now: clock.now })
    b.update(eps('a', 'b'))
    const [a] = eps('a')
    const p1 = b.place(a, clock.ms)
    const p2 = b.place(a, clock.ms)
    t.same(b.describe().map((d) => [d.id, d.pending]), [['a', 2], ['b', 0]])
    p1.end(clock.ms + 5, false)
    p1.end(clock.ms + 6, false)
    t.same(b.describe().map((d) => [d.id, d.pending]), [['a', 1], ['b', 0]], 'a second end() changes nothing')
    b.update(eps('a', 'b', 'c'))
    t.same(b.describe().map((d) => [d.id, d.pending]), [['a', 1], ['b', 0], ['c', 0]], 'pending survives an update')
    b.update(eps('b', 'c'))
    p2.end(clock.ms + 7, true) // its endpoint left: harmless
    t.same(b.describe().map((d) => [d.id, d.pending]), [['b', 0], ['c', 0]])
    const ewma = b.describe()[0].ewmaMs
    if (policy.type === 'P2C_PEAK_EWMA') t.equal(ewma, 30, 'an endpoint with no sample starts at 30 ms')
    else t.equal(ewma, null, 'no latency estimate')
  })
}

t.test('ROUND_ROBIN goes in order, skips the ineligible for that request, and keeps its position across update()', async (t) => {
  const b = new RoundRobinRequestBalancer<Ep>()
  b.update(eps('a', 'b', 'c'))
  const seq = (n: number, input = any()): Array<string | undefined> => Array.from({ length: n }, () => b.pick(input)?.id)
  t.same(seq(4), ['a', 'b', 'c', 'a'])
  t.same(seq(1, except(['b'])), ['c'], 'b skipped')
  t.same(seq(2), ['a', 'b'], 'then on from after c')
  // next is c; a new endpoint elsewhere must not reset the rotation
  b.update(eps('a', 'b', 'c', 'd'))
  t.same(seq(4), ['c', 'd', 'a', 'b'])
  // next is c; c leaves: continue at the same position
  b.update(eps('a', 'b', 'd'))
  t.same(seq(3), ['d', 'a', 'b'])
})

t.test('RANDOM spreads evenly over the eligible endpoints', async (t) => {
  const b = new RandomBalancer<Ep>({ random: seededRandom(11) })
  b.update(eps('a', 'b', 'c', 'd'))
  const counts = new Map<string, number>()
  const N = 8000
  for (let i = 0; i < N; i++) { const id = b.pick(except(['d']))!.id; counts.set(id, (counts.get(id) ?? 0) + 1) }
  t.equal(counts.get('d'), undefined)
  for (const id of ['a', 'b', 'c']) t.ok(Math.abs(counts.get(id)! / N - 1 / 3) < 0.03, `${id}: ${counts.get(id)}`)
})

t.test('LEAST_REQUEST prefers idle endpoints', async (t) => {
  // Two endpoints: both are always the pair, so the one with fewer pending wins every time.
  const two = new LeastRequestBalancer<Ep>({ random: seededRandom(5) })
  two.update(eps('a', 'b'))
  const [a, b] = eps('a', 'b')
  two.place(a, 0); two.place(a, 0)
  two.place(b, 0)
  for (let i = 0; i < 50; i++) t.equal(two.pick(any())?.id, 'b', 'fewer pending') || t.bailout()

  // Three: the idle one wins whenever it is drawn (2 pairs out of 3).
  const three = new LeastRequestBalancer<Ep>({ random: seededRandom(6) })
  three.update(eps('busy1', 'idle', 'busy2'))
  for (let i = 0; i < 5; i++) { three.place({ id: 'busy1' }, 0); three.place({ id: 'busy2' }, 0) }
  const N = 6000
  let idle = 0
  for (let i = 0; i < N; i++) if (three.pick(any())?.id === 'idle') idle++
  t.ok(Math.abs(idle / N - 2 / 3) < 0.03, `idle share ${(idle / N).toFixed(3)} ≈ 2/3 (random would give 1/3)`)

  // Placing without ending: the load evens out.
  const even = new LeastRequestBalancer<Ep>({ random: seededRandom(8) })
  even.update(eps('a', 'b', 'c'))
  for (let i = 0; i < 300; i++) { const e = even.pick(any())!; even.place(e, 0) }
  const pend = even.describe().map((d) => d.pending)
  t.ok(Math.max(...pend) - Math.min(...pend) <= 3, `pending stays within 3 of each other: ${pend.join(', ')}`)
})

t.test('P2C-EWMA: peak-sensitive, time-weighted decay, cost = estimate × (pending + 1)', async (t) => {
  const clock = new FakeClock()
  const b = new PeakEwmaBalancer<Ep>({ random: seededRandom(1), now: clock.now })
  b.update(eps('a', 'b'))
  const [a, bb] = eps('a', 'b')
  const ewma = (id: string): number => b.describe().find((d) => d.id === id)!.ewmaMs!
  t.equal(ewma('a'), 30, 'default RTT 30 ms')

  // A sample above the estimate replaces it at once.
  let p = b.place(a, clock.ms); clock.advance(100); p.end(clock.ms, false)
  t.equal(ewma('a'), 100, 'peak: 100 ms replaces 30 ms')

  // A lower sample 10 s (one decay constant) after the last update: weight 1 − e^−1.
  clock.advance(9_990)
  p = b.place(a, clock.ms); clock.advance(10); p.end(clock.ms, false)
  const expected = 100 * Math.exp(-1) + 10 * (1 - Math.exp(-1))
  t.ok(Math.abs(ewma('a') - expected) < 1e-9, `ewma ${ewma('a')} = ${expected}`)

  // A lower sample right after: barely moves the estimate.
  p = b.place(a, clock.ms); p.end(clock.ms + 1, false)
  t.ok(Math.abs(ewma('a') - expected) < 0.01, 'a sample 1 ms after the last update weighs 1 − e^(−1/10000)')

  // A failure faster than the estimate does not lower it; a slow failure is a peak.
  const before = ewma('a')
  p = b.place(a, clock.ms); p.end(clock.ms, true)
  t.equal(ewma('a'), before, 'a fast failure leaves the estimate')
  p = b.place(a, clock.ms); clock.advance(200); p.end(clock.ms, true)
  t.equal(ewma('a'), 200, 'a slow failure is a peak')

  // Idle, the estimate decays towards zero (10 s: × e^−1).
  clock.advance(10_000)
  t.ok(Math.abs(ewma('a') - 200 * Math.exp(-1)) < 1e-9, 'decays towards 0 while idle')

  // Cost: a keeps the default 30 ms, b has a 100 ms peak: a is cheaper until its pending
  // requests multiply its estimate past b's.
  const fresh = new PeakEwmaBalancer<Ep>({ random: seededRandom(2), now: clock.now })
  fresh.update(eps('a', 'b'))
  const fb = fresh.place(bb, clock.ms); clock.advance(100); fb.end(clock.ms, false)
  const est = fresh.describe().map((d) => d.ewmaMs!)
  t.ok(est[0] < est[1], `a (${est[0].toFixed(1)} ms) cheaper than b (${est[1].toFixed(1)} ms)`)
  for (let i = 0; i < 20; i++) t.equal(fresh.pick(any())?.id, 'a', 'the cheaper of the two') || t.bailout()
  // The fewest pending requests on a that make it dearer: est_a × (k + 1) > est_b.
  const k = Math.floor(est[1] / est[0]) // 3: 29.7 × 4 > 100 > 29.7 × 3
  for (let i = 0; i < k - 1; i++) fresh.place(a, clock.ms)
  t.equal(fresh.pick(any())?.id, 'a', `${k - 1} pending on a: still cheaper`)
  fresh.place(a, clock.ms)
  t.equal(fresh.pick(any())?.id, 'b', `${k} pending on a: b is cheaper`)
})
