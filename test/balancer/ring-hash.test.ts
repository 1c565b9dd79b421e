import t from 'tap'
import { RingHashBalancer } from '../../src/balancer'
import { hash32, hash32Point } from '../../src/balancer/hash'
import { seededRandom } from '../helpers/seeded-random'

interface Ep { readonly id: string }
const endpoints = (n: number, from = 0): Ep[] => Array.from({ length: n }, (_, i) => ({ id: `10.0.${(from + i) >> 8}.${(from + i) & 255}|8080` }))
const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`)
const all = (hash: string | null): { eligible: () => boolean, hash: string | null } => ({ eligible: () => true, hash })

function assign (b: RingHashBalancer<Ep>): Map<string, string> {
  return new Map(KEYS.map((k) => [k, b.pick(all(k))!.id]))
}

t.test('hash32 is deterministic and spreads close strings apart', async (t) => {
  t.equal(hash32('user-1'), hash32('user-1'))
  t.not(hash32('user-1'), hash32('user-2'))
  t.equal(hash32(''), hash32(''))
  // Bits of hashes of consecutive keys: each bit set about half the time.
  const ones = new Array<number>(32).fill(0)
  for (const k of KEYS) { const h = hash32(k); for (let b = 0; b < 32; b++) if ((h >>> b) & 1) ones[b]++ }
  t.ok(ones.every((n) => Math.abs(n / KEYS.length - 0.5) < 0.03), 'every bit is balanced')
})

t.test('a key always goes to the same endpoint, in every instance built from the same list', async (t) => {
  const a = new RingHashBalancer<Ep>()
  const b = new RingHashBalancer<Ep>() // another worker
  a.update(endpoints(5))
  b.update(endpoints(5))
  const first = assign(a)
  t.same(assign(a), first, 'stable across picks')
  t.same(assign(b), first, 'the same in another instance')
})

t.test('keys spread evenly over the endpoints', async (t) => {
  for (const n of [2, 5, 20]) {
    const b = new RingHashBalancer<Ep>()
    b.update(endpoints(n))
    const counts = new Map<string, number>()
    for (const id of assign(b).values()) counts.set(id, (counts.get(id) ?? 0) + 1)
    t.equal(counts.size, n, `${n} endpoints all used`)
    const shares = [...counts.values()].map((c) => c / KEYS.length * n)
    t.ok(shares.every((s) => s > 0.7 && s < 1.3), `${n} endpoints: each within ±30 % of an even share (${shares.map((s) => s.toFixed(2)).join(' ')})`)
  }
})

t.test('an endpoint leaving moves only its own keys; one joining takes about 1/n', async (t) => {
  const b = new RingHashBalancer<Ep>()
  const ten = endpoints(10)
  b.update(ten)
  const before = assign(b)
  const gone = ten[3].id
  b.update(ten.filter((e) => e.id !== gone))
  const after = assign(b)
  let moved = 0
  for (const k of KEYS) {
    if (before.get(k) === gone) { moved++; continue }
    if (after.get(k) !== before.get(k)) { t.fail(`${k} moved from ${before.get(k)} to ${after.get(k)}`); break }
  }
  t.ok(moved / KEYS.length > 0.05 && moved / KEYS.length < 0.15, `only the leaver's keys moved (${(moved / KEYS.length * 100).toFixed(1)} %)`)

  b.update([...ten, ...endpoints(1, 10)])
  const joined = endpoints(1, 10)[0].id
  const withNew = assign(b)
  let toNew = 0
  for (const k of KEYS) {
    if (withNew.get(k) === joined) { toNew++; continue }
    if (withNew.get(k) !== before.get(k)) { t.fail(`${k} moved between old endpoints`); break }
  }
  t.ok(toNew / KEYS.length > 0.05 && toNew / KEYS.length < 0.14, `the newcomer took ${(toNew / KEYS.length * 100).toFixed(1)} % (1/11 ≈ 9.1 %), the rest stayed`)
})

t.test('an ineligible endpoint\'s keys go to the next endpoint on the ring, the same one every time', async (t) => {
  const b = new RingHashBalancer<Ep>()
  b.update(endpoints(6))
  const before = assign(b)
  const out = before.get('user-42')!
  const skip = { eligible: (e: Ep) => e.id !== out }
  const second = b.pick({ ...skip, hash: 'user-42' })!.id
  t.not(second, out)
  for (let i = 0; i < 10; i++) t.equal(b.pick({ ...skip, hash: 'user-42' })!.id, second, 'the same fallback')
  // Keys not on the ineligible endpoint are unaffected.
  for (const k of KEYS.slice(0, 2000)) {
    if (before.get(k) === out) continue
    if (b.pick({ ...skip, hash: k })!.id !== before.get(k)) { t.fail(`${k} moved`); break }
  }
  // A retry that excludes the first two endpoints it tried still finds a third.
  const tried = new Set([out, second])
  const third = b.pick({ eligible: (e) => !tried.has(e.id), hash: 'user-42' })!.id
  t.notOk(tried.has(third), 'a third endpoint for the second retry')
})

t.test('no hash input: a random eligible endpoint', async (t) => {
  const b = new RingHashBalancer<Ep>({ random: seededRandom(12) })
  b.update(endpoints(4))
  const seen = new Set<string>()
  for (let i = 0; i < 200; i++) seen.add(b.pick(all(null))!.id)
  t.equal(seen.size, 4, 'spread over every endpoint')
})

t.test('a ring point\'s hash is hash32 of "id#k", built without the string', async (t) => {
  for (const [id, k] of [['10.0.0.1|80', 0], ['10.0.0.1|80', 9], ['a', 10], ['b', 159], ['c', 1000]] as Array<[string, number]>) {
    t.equal(hash32Point(id, k), hash32(`${id}#${k}`), `${id}#${k}`)
  }
})
