import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'
import type { OutlierDetection } from '../../src/routing/model'

// Outlier detection with Envoy's semantics, on an injected clock.

const policy: OutlierDetection = {
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: null,
  consecutiveLocalOriginFailures: null,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionPercent: 100,
  minHealthPercent: 0
}

function tracker (p: Partial<OutlierDetection> = {}, count = 3): { o: ReturnType<NodeLimits['outliersFor']>, limits: NodeLimits } {
  const limits = new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 256, pods: 64 }), () => 0)
  return { o: limits.outliersFor('ns/svc:80', { ...policy, ...p }, () => count), limits }
}

function fail (o: ReturnType<NodeLimits['outliersFor']>, id: string, n: number, now: number, result: '5xx' | 'gateway_error' | 'local_failure' = '5xx'): void {
  for (let i = 0; i < n; i++) o.report(id, result, now)
}

const T0 = 1_000_000

t.test('consecutive 5xx eject for the base time; back after it, with its counts reset', async (t) => {
  const { o } = tracker()
  fail(o, 'a', 4, T0)
  t.notOk(o.ejected('a', T0), 'below the threshold')
  o.report('a', 'success', T0)
  fail(o, 'a', 4, T0)
  t.notOk(o.ejected('a', T0), 'a success reset the count')
  o.report('a', '5xx', T0)
  t.ok(o.ejected('a', T0), 'the fifth consecutive 5xx ejects')
  t.ok(o.ejected('a', T0 + 29_999))
  t.notOk(o.ejected('a', T0 + 30_000), 'back after baseEjectionTime')
  o.report('a', '5xx', T0 + 30_000)
  t.notOk(o.ejected('a', T0 + 30_000), 'the counts were reset at ejection: one error does not eject again')
})

t.test('the ejection time grows with the number of ejections, capped; the count decays per interval', async (t) => {
  const { o } = tracker({ baseEjectionTimeMs: 100_000 })
  let now = T0
  fail(o, 'a', 5, now)
  t.ok(o.ejected('a', now + 99_999))
  now += 100_000
  fail(o, 'a', 5, now)
  t.equal(o.ejections('a', now), 2)
  t.ok(o.ejected('a', now + 199_999), 'second ejection: 2 × base')
  t.notOk(o.ejected('a', now + 200_000))
  now += 200_000
  fail(o, 'a', 5, now)
  t.ok(o.ejected('a', now + 299_999), 'third: 3 × base = 300 s, the cap')
  t.notOk(o.ejected('a', now + 300_000))
  now += 300_000
  fail(o, 'a', 5, now)
  t.notOk(o.ejected('a', now + 300_000), 'fourth: capped at 300 s')
  now += 300_000
  // 3 intervals not ejected: 4 → 1; the next ejection is the second.
  now += 30_000
  t.equal(o.ejections('a', now), 1)
  fail(o, 'a', 5, now)
  t.ok(o.ejected('a', now + 199_999))
  t.notOk(o.ejected('a', now + 200_000))
})

t.test('gateway errors: their own threshold; a non-gateway 5xx resets it', async (t) => {
  const { o } = tracker({ consecutive5xxErrors: null, consecutiveGatewayErrors: 3 })
  fail(o, 'a', 2, T0, 'gateway_error')
  o.report('a', '5xx', T0)
  fail(o, 'a', 2, T0, 'gateway_error')
  t.notOk(o.ejected('a', T0))
  o.report('a', 'gateway_error', T0)
  t.ok(o.ejected('a', T0))
})

t.test('local-origin failures: counted as gateway errors, or on their own when consecutiveLocalOriginFailures is set', async (t) => {
  const mixed = tracker({ consecutive5xxErrors: null, consecutiveGatewayErrors: 2 }).o
  fail(mixed, 'a', 2, T0, 'local_failure')
  t.ok(mixed.ejected('a', T0))
  const split = tracker({ consecutive5xxErrors: 5, consecutiveLocalOriginFailures: 2 }).o
  fail(split, 'a', 1, T0, 'local_failure')
  t.notOk(split.ejected('a', T0))
  fail(split, 'a', 1, T0, 'local_failure')
  t.ok(split.ejected('a', T0))
})

t.test('maxEjectionPercent is respected and the last healthy endpoint is never ejected', async (t) => {
  const half = tracker({ maxEjectionPercent: 50 }, 4).o
  fail(half, 'a', 5, T0)
  fail(half, 'b', 5, T0)
  fail(half, 'c', 5, T0)
  t.same(['a', 'b', 'c'].map((id) => half.ejected(id, T0)), [true, true, false], '2 of 4 is 50 %; a third is refused')
  t.equal(half.active(T0), 2)
  // Once one is back, the refused one's next error ejects it.
  const later = T0 + 30_000
  t.notOk(half.ejected('a', later))
  half.report('c', '5xx', later)
  t.ok(half.ejected('c', later))

  const all = tracker({ maxEjectionPercent: 100 }, 2).o
  fail(all, 'a', 5, T0)
  fail(all, 'b', 5, T0)
  t.ok(all.ejected('a', T0))
  t.notOk(all.ejected('b', T0), 'the last healthy one stays')
  const single = tracker({ maxEjectionPercent: 100 }, 1).o
  fail(single, 'a', 50, T0)
  t.notOk(single.ejected('a', T0), 'a backend of one is never emptied')
})

t.test('below minHealthPercent healthy, detection is off: nothing counts as ejected', async (t) => {
  let count = 4
  const limits = new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 256, pods: 64 }), () => 0)
  const o = limits.outliersFor('ns/svc:80', { ...policy, minHealthPercent: 60 }, () => count)
  fail(o, 'a', 5, T0)
  t.ok(o.ejected('a', T0), '3 of 4 healthy: 75 %')
  count = 2
  t.notOk(o.ejected('a', T0), '1 of 2 healthy: 50 % < 60 %')
})

t.test('another view of the memory (another worker) sees the same ejections and counts', async (t) => {
  const memory = NodeLimits.allocate({ backends: 64, endpoints: 256, pods: 64 })
  const one = new NodeLimits(memory, () => 0).outliersFor('ns/svc:80', policy, () => 3)
  const two = new NodeLimits(memory, () => 0).outliersFor('ns/svc:80', policy, () => 3)
  fail(one, 'a', 3, T0)
  fail(two, 'a', 2, T0)
  t.ok(one.ejected('a', T0), 'five errors over two workers eject')
  t.ok(two.ejected('a', T0))
  const other = new NodeLimits(memory, () => 0).outliersFor('ns/other:80', policy, () => 3)
  t.notOk(other.ejected('a', T0), 'keyed by backend')
})
