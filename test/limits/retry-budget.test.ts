import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'
import { RETRY_BUDGET } from '../../src/limits/retry-budget'
import type { RetryBudget } from '../../src/limits/types'

// The retry budget: retries ≤ 20 % of the last 10 s of requests + 10/s, with an injected
// clock. The floor is a pace (one retry per 100 ms, never saved up; the next turn may be
// booked and waited for); the 20 % is a sliding window.

const small = { backends: 64, endpoints: 64, pods: 64 }

function limits (clock: { now: number }): NodeLimits {
  return new NodeLimits(NodeLimits.allocate(small), () => clock.now)
}

/** Retries the budget gives (now or after a wait) until it has none. */
function drain (b: RetryBudget): number {
  let n = 0
  while (b.withdraw() !== null && n < 1_000_000) n++
  return n
}

t.test('with no requests, the floor: one retry now, the next booked 100 ms ahead, then none', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  t.equal(b.withdraw(), 0, 'the turn due now')
  t.equal(b.withdraw(), 100, 'the next turn, waited for')
  t.equal(b.withdraw(), null, 'nothing further ahead')
  clock.now += 150
  t.equal(b.withdraw(), 50, 'the turn after the booked one')
  t.equal(b.withdraw(), null)
})

t.test('the floor does not save up: a quiet minute gives one turn now and one booked', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  clock.now += 60_000
  t.equal(b.withdraw(), 0)
  t.equal(b.withdraw(), 100)
  t.equal(b.withdraw(), null)
})

t.test('the ratio: retries stay under 20 % of the window\'s requests, on top of the floor', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  for (let i = 0; i < 1000; i++) b.deposit()
  t.equal(drain(b), 2 + 199, 'the floor\'s turn now and the next, then 199 of the ratio')
  t.same(b.counts(), { requests: 1000, retries: 201, allowed: 199 + RETRY_BUDGET.minPerSecond * RETRY_BUDGET.windowSeconds })
})

t.test('a busy backend\'s retries do not wait for the floor while the ratio is ample; its last 10 do', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  for (let i = 0; i < 100; i++) b.deposit()
  const waits: Array<number | null> = []
  for (let i = 0; i < 22; i++) waits.push(b.withdraw())
  t.same(waits.slice(0, 10), Array(10).fill(0), 'the floor\'s turn, then the ratio above its reserve of 10: at once')
  t.equal(waits[10], 100, 'then the floor\'s next turn, booked')
  t.same(waits.slice(11, 21), Array(10).fill(0), 'then the reserve')
  t.equal(waits[21], null)
})

t.test('the window slides: a second\'s requests and ratio retries leave it 10 s later', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  for (let i = 0; i < 500; i++) b.deposit()
  t.equal(drain(b), 2 + 99)
  clock.now += 5_000
  t.equal(drain(b), 2, 'within the window: only the floor')
  clock.now += 5_000
  // The first second left: its requests and ratio retries with it.
  t.equal(b.counts().requests, 0)
  for (let i = 0; i < 50; i++) b.deposit()
  t.equal(drain(b), 2 + 9)
})

t.test('a backend failing every request: over a run, retries ≤ 20 % of its requests + 10/s, and the budget is used', async (t) => {
  // 30 requests/s for 20 s in 1 ms steps; each failure wants a retry at once, up to five
  // per request, and a retry told to wait goes when its wait is over.
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  let requests = 0
  let sent = 0
  const waiting: Array<{ at: number, left: number }> = []
  const start = clock.now
  const want = (left: number): void => {
    const d = b.withdraw()
    if (d !== null) waiting.push({ at: clock.now + d, left: left - 1 })
  }
  for (let ms = 0; ms <= 20_000; ms++) {
    if (ms % 33 === 0 && requests < 600) {
      b.deposit()
      requests++
      want(5)
    }
    for (let i = waiting.length - 1; i >= 0; i--) {
      const w = waiting[i]
      if (w.at > clock.now) continue
      waiting.splice(i, 1)
      sent++
      if (w.left > 0) want(w.left)
    }
    clock.now += 1
  }
  const seconds = (clock.now - start) / 1000
  t.equal(requests, 600)
  t.ok(sent <= 0.2 * requests + 10 * seconds, `${sent} retries ≤ 0.2 × ${requests} + 10 × ${seconds} s`)
  t.ok(sent >= 0.2 * requests + 10 * seconds - 5, `${sent}: the budget is used, not starved`)
})

t.test('budgets are per backend; the same key is the same budget from another view', async (t) => {
  const clock = { now: 1_000_000 }
  const memory = NodeLimits.allocate(small)
  const one = new NodeLimits(memory, () => clock.now)
  const two = new NodeLimits(memory, () => clock.now)
  for (let i = 0; i < 50; i++) one.budgetFor('a:80').deposit()
  t.equal(drain(one.budgetFor('a:80')), 2 + 9)
  t.equal(two.budgetFor('a:80').withdraw(), null, 'the other view shares it')
  t.equal(two.budgetFor('b:80').withdraw(), 0, 'another backend has its own')
})
