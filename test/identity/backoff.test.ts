import t from 'tap'
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/identity/backoff'
import { formatDuration, parseDuration } from '../../src/identity/duration'

// Retry delays and durations: small pure functions, tested with injected randomness.

t.test('delays double up to the maximum, and jitter only shortens them', async (t) => {
  const policy = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }
  t.same([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, () => 0)), [100, 200, 400, 800, 1000, 1000], 'random 0: the ceiling')
  t.same([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy, () => 0.999999)), [50, 100, 200, 400, 500], 'random ~1: half the ceiling')
  t.equal(backoffDelay(0, policy, () => 0), 100, 'attempt 0 is treated as the first')
  t.equal(backoffDelay(1, DEFAULT_BACKOFF, () => 0), 1000)
  t.equal(backoffDelay(100, DEFAULT_BACKOFF, () => 0), 60_000)
})

t.test('durations in Go notation', async (t) => {
  t.equal(parseDuration('24h', 'x'), 86_400_000)
  t.equal(parseDuration('1h30m15s', 'x'), 5_415_000)
  t.equal(parseDuration('500ms', 'x'), 500)
  t.equal(parseDuration('2d', 'x'), 172_800_000)
  for (const bad of ['', '10', 'h', '1.5h', '-1s', '1 h', '1H']) t.throws(() => parseDuration(bad, '--cert-ttl'), { code: 'FERRY_ERR_INVALID_ARG', message: /--cert-ttl/ }, bad)
  t.equal(formatDuration(86_400_000), '24h')
  t.equal(formatDuration(5_415_000), '1h30m15s')
  t.equal(formatDuration(1500), '1500ms')
  t.equal(formatDuration(0), '0s')
})
