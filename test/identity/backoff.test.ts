import t from 'tap'
import { backoffDelay, checkBackoff, DEFAULT_BACKOFF, RECONNECT_BACKOFF } from '../../src/identity/backoff'
import { retryDelay, RETRIES_BEFORE_EXPIRY } from '../../src/identity/svid-rotation'

// Retry delays: a small pure function, tested with injected randomness.

t.test('delays double up to the maximum, and jitter only shortens them', async (t) => {
  const policy = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }
  t.same([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, () => 0)), [100, 200, 400, 800, 1000, 1000], 'random 0: the ceiling')
  t.same([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy, () => 0.999999)), [50, 100, 200, 400, 500], 'random ~1: half the ceiling')
  t.equal(backoffDelay(0, policy, () => 0), 100, 'attempt 0 is treated as the first')
  t.equal(backoffDelay(1, DEFAULT_BACKOFF, () => 0), 1000)
  t.equal(backoffDelay(100, DEFAULT_BACKOFF, () => 0), 60_000)
})

// Guards the plain form every retry loop can use (the pod enroller's { initialMs, maxMs }):
// doubling, no jitter, no randomness needed.
t.test('without multiplier and jitter: doubling, exact', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, { initialMs: 500, maxMs: 30_000 })), [500, 1000, 2000, 4000, 8000, 16_000, 30_000])
  t.same([1, 2, 3].map((n) => backoffDelay(n, RECONNECT_BACKOFF, () => 0)), [500, 1000, 2000], 'the control-plane policy starts at 0.5 s')
})

t.test('checkBackoff fills the defaults and refuses a policy that cannot work', async (t) => {
  const p = checkBackoff({ initialMs: 100, maxMs: 200 }, 'retry')
  t.same(p, { initialMs: 100, maxMs: 200, multiplier: 2, jitter: 0 })
  t.ok(Object.isFrozen(p))
  for (const bad of [{ initialMs: 0, maxMs: 1 }, { initialMs: 2, maxMs: 1 }, { initialMs: 1, maxMs: 2, multiplier: 0.5 }, { initialMs: 1, maxMs: 2, jitter: 1.5 }]) {
    t.throws(() => checkBackoff(bad, 'retry'), { code: 'FERRY_ERR_INVALID_ARG', message: /^retry / }, JSON.stringify(bad))
  }
})

t.test('retryDelay: a retry while a certificate is in hand waits at most a tenth of its time left, never under the floor', async (t) => {
  t.equal(RETRIES_BEFORE_EXPIRY, 10)
  t.equal(retryDelay(60_000, 1000, null), 60_000, 'no certificate: the backoff\'s delay')
  t.equal(retryDelay(60_000, 1000, -5), 60_000, 'expired: the backoff\'s delay')
  t.equal(retryDelay(60_000, 1000, 600_000), 60_000, '10 min left: the backoff\'s 60 s')
  t.equal(retryDelay(60_000, 1000, 60_000), 6000, '1 min left: 6 s')
  t.equal(retryDelay(60_000, 1000, 3000), 1000, '3 s left: the floor')
  t.equal(retryDelay(500, 1000, 3000), 500, 'a shorter backoff delay stands')
})
