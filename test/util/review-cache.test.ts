import t from 'tap'
import { ReviewCache } from '../../src/util/review-cache'

// The bounded cache in front of API-server reviews: what it keeps, for how long, that a
// full cache costs the same per insert, that callers with made-up tokens spend a rate
// budget instead of API-server reviews, and that concurrent callers share one review.
// Time is a test clock.

function cache (opts: Partial<ConstructorParameters<typeof ReviewCache>[0]> = {}): { c: ReviewCache<{ ok: boolean, who: string }>, clock: { t: number } } {
  const clock = { t: 0 }
  const c = new ReviewCache<{ ok: boolean, who: string }>({ positiveTtlMs: 60_000, negativeTtlMs: 10_000, maxEntries: 100, ratePerSecond: 10, burst: 20, now: () => clock.t, ...opts })
  return { c, clock }
}

const judge = async (token: string): Promise<{ ok: boolean, who: string }> => ({ ok: token.startsWith('good'), who: token })

t.test('answers from the cache until the TTL of the answer', async (t) => {
  const { c, clock } = cache()
  t.same(await c.get('good-1', judge), { answer: { ok: true, who: 'good-1' } })
  t.same(await c.get('bad-1', judge), { answer: { ok: false, who: 'bad-1' } })
  await c.get('good-1', judge)
  await c.get('bad-1', judge)
  t.equal(c.reviews, 2, 'each reviewed once')
  clock.t += 10_001
  await c.get('good-1', judge)
  await c.get('bad-1', judge)
  t.equal(c.reviews, 3, 'the refusal expired first')
})

t.test('a full cache drops its oldest entry: size stays at the bound, each insert one delete', async (t) => {
  const { c } = cache({ maxEntries: 50, ratePerSecond: 1e9, burst: 1e9 })
  for (let i = 0; i < 10_000; i++) await c.get(`bad-${i}`, judge)
  t.equal(c.size, 50)
  t.equal(c.reviews, 10_000)
  await c.get('bad-9999', judge)
  t.equal(c.reviews, 10_000, 'the newest is kept')
  await c.get('bad-0', judge)
  t.equal(c.reviews, 10_001, 'the oldest was dropped')
})

t.test('a flood of unknown tokens spends the rate budget, not API-server reviews; cached callers are not affected', async (t) => {
  const { c, clock } = cache({ ratePerSecond: 10, burst: 20 })
  await c.get('good-agent', judge)
  let limited = 0
  for (let i = 0; i < 1000; i++) if ('limited' in await c.get(`made-up-${i}`, judge)) limited++
  t.equal(c.reviews, 1 + 19, 'the burst, then nothing')
  t.equal(limited, 981)
  t.same(await c.get('good-agent', judge), { answer: { ok: true, who: 'good-agent' } }, 'a cached token is answered during the flood')
  clock.t += 1000
  let reviewed = 0
  for (let i = 0; i < 100; i++) if (!('limited' in await c.get(`later-${i}`, judge))) reviewed++
  t.equal(reviewed, 10, 'the budget refills at the rate')
})

t.test('concurrent callers with one token share one review; a failed review is not cached', async (t) => {
  const { c } = cache()
  let calls = 0
  let release: () => void = () => {}
  const slow = async (token: string): Promise<{ ok: boolean, who: string }> => { calls++; await new Promise<void>((resolve) => { release = resolve }); return { ok: true, who: token } }
  const all = Promise.all([c.get('good-x', slow), c.get('good-x', slow), c.get('good-x', slow)])
  await new Promise((resolve) => setImmediate(resolve))
  release()
  t.same((await all).map((o) => 'answer' in o && o.answer.who), ['good-x', 'good-x', 'good-x'])
  t.equal(calls, 1)
  await t.rejects(c.get('good-y', async () => { throw new Error('API server down') }), /API server down/)
  t.same(await c.get('good-y', judge), { answer: { ok: true, who: 'good-y' } }, 'asked again')
})
