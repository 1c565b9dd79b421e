import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'

// A destination pod's token bucket: burst at once, then `requests` per `perSeconds`;
// what the 429's x-ratelimit-* headers say.

const T0 = 1_700_000_000_000

function limits (): NodeLimits {
  return new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 }), () => T0)
}

t.test('burst at once, then refused; limit, remaining and reset as the headers carry them', async (t) => {
  const r = limits().rateLimitFor('pod-uid-1', { requests: 10, perSeconds: 1, burst: 5 }, 'RateLimit default/api')
  const first = r.take(T0)
  t.same(first, { allowed: true, limit: 5, remaining: 4, resetSeconds: 1, policy: 'RateLimit default/api' })
  for (let i = 0; i < 4; i++) t.ok(r.take(T0).allowed)
  const refused = r.take(T0)
  t.equal(refused.allowed, false)
  t.equal(refused.remaining, 0)
  t.equal(refused.resetSeconds, 1, '5 tokens at 10/s: full in 0.5 s, rounded up')
  t.ok(r.take(T0 + 100).allowed, 'one token back after 100 ms')
  t.notOk(r.take(T0 + 100).allowed)
})

t.test('the rate over time: requests per perSeconds', async (t) => {
  const r = limits().rateLimitFor('pod-uid-1', { requests: 100, perSeconds: 60 }, 'RateLimit default/api')
  let allowed = 0
  // 10 minutes, one try every 100 ms: the burst (100) + 100 per minute.
  for (let ms = 0; ms < 600_000; ms += 100) if (r.take(T0 + ms).allowed) allowed++
  t.ok(allowed >= 100 + 999 && allowed <= 100 + 1001, `allowed ${allowed}`)
})

t.test('one bucket per pod, whichever view takes from it; other pods have theirs', async (t) => {
  const memory = NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })
  const spec = { requests: 3, perSeconds: 60 }
  const a = new NodeLimits(memory, () => T0).rateLimitFor('pod-a', spec, 'RateLimit ns/x')
  const a2 = new NodeLimits(memory, () => T0).rateLimitFor('pod-a', spec, 'RateLimit ns/x')
  const b = new NodeLimits(memory, () => T0).rateLimitFor('pod-b', spec, 'RateLimit ns/x')
  t.ok(a.take(T0).allowed)
  t.ok(a2.take(T0).allowed)
  t.ok(a.take(T0).allowed)
  t.notOk(a2.take(T0).allowed, 'three between the two views')
  t.ok(b.take(T0).allowed)
})
