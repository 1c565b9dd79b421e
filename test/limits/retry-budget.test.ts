import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'
import { RETRY_BUDGET } from '../../src/limits/retry-budget'

// Linkerd's retry budget: retries ≤ 20 % of requests + 10/s over 10 s, with an injected clock.

const small = { backends: 64, endpoints: 64, pods: 64 }

function limits (clock: { now: number }): NodeLimits {
  return new NodeLimits(NodeLimits.allocate(small), () => clock.now)
}

function drain (withdraw: () => boolean): number {
  let n = 0
  while (withdraw() && n < 1_000_000) n++
  return n
}

t.test('with no requests, the floor: 10/s over the window', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  t.equal(drain(() => b.withdraw()), RETRY_BUDGET.minPerSecond * RETRY_BUDGET.windowSeconds)
  t.notOk(b.withdraw(), 'exhausted')
})

t.test('20 % of the window\'s requests on top of the floor', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  for (let i = 0; i < 1000; i++) b.deposit()
  t.equal(drain(() => b.withdraw()), 200 + 100)
  t.same(b.counts(), { requests: 1000, retries: 300, allowed: 300 })
})

t.test('the window slides: a second\'s counts leave it 10 s later', async (t) => {
  const clock = { now: 1_000_000 }
  const b = limits(clock).budgetFor('ns/svc:80')
  for (let i = 0; i < 500; i++) b.deposit()
  t.equal(drain(() => b.withdraw()), 200)
  clock.now += 5_000
  t.notOk(b.withdraw(), 'still within the window')
  clock.now += 5_000
  // The first second left: its requests and retries with it.
  t.same(b.counts(), { requests: 0, retries: 0, allowed: 100 })
  t.equal(drain(() => b.withdraw()), 100)
})

t.test('budgets are per backend; the same key is the same budget from another view', async (t) => {
  const clock = { now: 1_000_000 }
  const memory = NodeLimits.allocate(small)
  const one = new NodeLimits(memory, () => clock.now)
  const two = new NodeLimits(memory, () => clock.now)
  t.equal(drain(() => one.budgetFor('a:80').withdraw()), 100)
  t.notOk(two.budgetFor('a:80').withdraw(), 'the other view shares it')
  t.ok(two.budgetFor('b:80').withdraw(), 'another backend has its own')
})
