import t, { type Test } from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { uniqueLabName } from '../helpers/names'
import { jsonFrom } from '../helpers/l7-lab'

// examples/bookinfo/README.md, step by step, on a lab of its own: the same files and
// commands a newcomer runs, each step's load.js line printed as a comment (the README's
// outputs come from here) and checked against what the README says it shows.

const DIR = join(REPO, 'examples/bookinfo')
const lab = uniqueLabName('bookinf')
/** Steps that need routes served end to end: their failures are reported as todo until then. */
const PENDING = new Set<string>([])
const TODO = 'routes not wired yet'

interface Load { requests: number, statuses: Record<string, number>, reviews: Record<string, number>, p50_ms: number, p99_ms: number }

t.setTimeout(600_000)
t.before(async () => { await ferryOk(['lab', 'up', '--name', lab, join(DIR, 'bookinfo.yaml')], { timeoutMs: 180_000 }) })
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 90_000 }) })

async function load (t: Test, args: string[]): Promise<Load> {
  const out: Load = await jsonFrom(lab, 'bookinfo', 'client', ['node', 'load.js', ...args], 180_000)
  t.comment(`node load.js ${args.join(' ')}\n${JSON.stringify(out)}`)
  return out
}

async function apply (t: Test, files: string[], extra: { todo?: string }): Promise<boolean> {
  const r = await ferry(['lab', 'apply', '--lab', lab, ...files.map((f) => join(DIR, f))], { timeoutMs: 60_000 })
  t.comment(`ferry lab apply ${files.join(' ')}\n${r.stdout}${r.stderr}`)
  t.equal(r.code, 0, `ferry lab apply ${files.join(' ')}: ${r.stderr.trim()}`, extra)
  return r.code === 0
}

const share = (l: Load, key: string): number => (l.reviews[key] ?? 0) / l.requests
const extraOf = (step: string): { todo?: string } => PENDING.has(step) ? { todo: TODO } : {}

t.test('0: without routes every version of reviews serves a third of the pages', async (t) => {
  const l = await load(t, ['--requests', '300'])
  t.same(l.statuses, { 200: 300 }, 'every page 200')
  for (const v of ['v1', 'v2', 'v3']) t.ok(share(l, `reviews-${v}`) > 0.2, `reviews-${v} serves its share (${l.reviews[`reviews-${v}`] ?? 0})`)
})

t.test('1: the canary sends 90 % to v1 and 10 % to v2', async (t) => {
  const extra = extraOf('1-canary')
  if (!await apply(t, ['1-canary/reviews-canary.yaml'], extra)) return
  const l = await load(t, ['--requests', '1000'])
  t.same(l.statuses, { 200: 1000 }, 'every page 200', extra)
  t.ok(Math.abs(share(l, 'reviews-v1') - 0.9) <= 0.03, `v1 within 90 ± 3 % (${share(l, 'reviews-v1')})`, extra)
  t.ok(Math.abs(share(l, 'reviews-v2') - 0.1) <= 0.03, `v2 within 10 ± 3 % (${share(l, 'reviews-v2')})`, extra)
  t.equal(l.reviews['reviews-v3'] ?? 0, 0, 'v3 serves nothing', extra)
})

t.test('2: the same file name replaces the route: 50/50, then removed', async (t) => {
  const extra = extraOf('2-canary-shift')
  try {
    if (!await apply(t, ['2-canary-shift/reviews-canary.yaml'], extra)) return
    const l = await load(t, ['--requests', '1000'])
    t.same(l.statuses, { 200: 1000 }, 'every page 200', extra)
    t.ok(Math.abs(share(l, 'reviews-v2') - 0.5) <= 0.05, `v2 within 50 ± 5 % (${share(l, 'reviews-v2')})`, extra)
    t.equal(l.reviews['reviews-v3'] ?? 0, 0, 'v3 serves nothing', extra)
  } finally {
    await ferry(['lab', 'delete', '--lab', lab, join(DIR, '2-canary-shift/reviews-canary.yaml')], { timeoutMs: 60_000 })
  }
})

t.test('3: subsets and a VirtualService send every page to v3', async (t) => {
  const extra = extraOf('3-subsets')
  if (!await apply(t, ['3-subsets/destination-rules.yaml', '3-subsets/reviews.yaml'], extra)) return
  const l = await load(t, ['--requests', '300'])
  t.same(l.reviews, { 'reviews-v3': 300 }, 'every page from reviews-v3', extra)
})

t.test('4: the ratings fault fails 30 % of the reviews', async (t) => {
  const extra = extraOf('4-fault')
  if (!await apply(t, ['4-fault/ratings.yaml'], extra)) return
  const l = await load(t, ['--requests', '1000'])
  t.ok(Math.abs(share(l, 'error 503') - 0.3) <= 0.04, `about 30 % of the pages show reviews' 503 (${share(l, 'error 503')})`, extra)
  t.equal((l.reviews['error 503'] ?? 0) + (l.reviews['reviews-v3'] ?? 0), 1000, 'the rest from reviews-v3', extra)
})

t.test('5: retries on reviews take the fault away at 20 pages/s', async (t) => {
  const extra = extraOf('5-retry')
  if (!await apply(t, ['5-retry/reviews.yaml'], extra)) return
  const l = await load(t, ['--requests', '400', '--rate', '20'])
  t.ok(share(l, 'reviews-v3') >= 0.98, `at least 98 % of the pages from reviews-v3 (${share(l, 'reviews-v3')})`, extra)
})
