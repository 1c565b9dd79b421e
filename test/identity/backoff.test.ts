import t from 'tap'
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/identity/backoff'

// Retry delays: a small pure function, tested with injected randomness.

t.test('delays double up to the maximum, and jitter only shortens them', async (t) => {
  const policy = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }
  t.same([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, () => 0)), [100, 200, 400, 800, 1000, 1000], 'random 0: the ceiling')
  t.same([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy, () => 0.999999)), [50, 100, 200, 400, 500], 'random ~1: half the ceiling')
  t.equal(backoffDelay(0, policy, () => 0), 100, 'attempt 0 is treated as the first')
  t.equal(backoffDelay(1, DEFAULT_BACKOFF, () => 0), 1000)
  t.equal(backoffDelay(100, DEFAULT_BACKOFF, () => 0), 60_000)
})
