import t from 'tap'
import { CERT_TTL, parseCertTtl } from '../../src/identity/cert-ttl'
import { formatDuration, parseDuration } from '../../src/identity/duration'

// One duration grammar for every option of every command, and one range of certificate
// lifetimes. Guards that what each command accepted before the grammars were merged is
// still accepted everywhere: Go's notation (`ferry agent`, `ferry controller`, the CNI
// options) and bare or fractional seconds (`ferry lab`).

t.test('Go\'s notation: parts of a number and a unit', async (t) => {
  t.equal(parseDuration('24h', 'x'), 86_400_000)
  t.equal(parseDuration('1h30m15s', 'x'), 5_415_000)
  t.equal(parseDuration('500ms', 'x'), 500)
  t.equal(parseDuration('2d', 'x'), 172_800_000)
  t.equal(parseDuration('1.5h', 'x'), 5_400_000, 'a fraction in a part, as Go takes it')
  t.equal(parseDuration('0s', 'x'), 0)
})

t.test('a bare number is seconds; white space around the text is ignored', async (t) => {
  t.equal(parseDuration('30', 'x'), 30_000)
  t.equal(parseDuration('0.5', 'x'), 500)
  t.equal(parseDuration(' 2m ', 'x'), 120_000)
  t.equal(parseDuration('1.0005s', 'x'), 1001, 'rounded to the millisecond')
})

t.test('anything else is FERRY_ERR_INVALID_ARG naming the option', async (t) => {
  for (const bad of ['', 'h', '-1s', '1 h', '1H', '1h30', 'soon', '.5s', '1e3', `${'9'.repeat(400)}h`]) {
    t.throws(() => parseDuration(bad, '--cert-ttl'), { code: 'FERRY_ERR_INVALID_ARG', message: /^--cert-ttl "/ }, bad)
  }
})

// Found by test/fuzz/cli-values.test.ts: a run of 40,000 digits took seconds (the search
// for unit parts is quadratic in it); text longer than any duration is refused unread.
t.test('text longer than any duration is refused as invalid before it is searched', async (t) => {
  for (const long of ['1'.repeat(40_000), `${'1'.repeat(40_000)} `, '1s'.repeat(33)]) {
    t.throws(() => parseDuration(long, '--drain-grace'), { code: 'FERRY_ERR_INVALID_ARG', message: /^--drain-grace "1+s?(1s)*\s?" is invalid: expected a duration/ }, `${long.length} characters`)
  }
  t.equal(parseDuration('1d23h59m59s999ms', 'x'), 172_799_999)
})

t.test('a range: the error says the bounds', async (t) => {
  t.equal(parseDuration('5m', 'x', { minMs: 1, maxMs: 300_000 }), 300_000, 'bounds are inclusive')
  t.throws(() => parseDuration('0', '--timeout', { minMs: 1 }), { message: '--timeout "0" is invalid: expected a duration of at least 1ms' })
  t.throws(() => parseDuration('2h', '--drain-grace', { maxMs: 3_600_000 }), { message: '--drain-grace "2h" is invalid: expected a duration up to 1h' })
  t.throws(() => parseDuration('10m', '--cni-timeout', { minMs: 1, maxMs: 300_000 }), { message: '--cni-timeout "10m" is invalid: expected a duration from 1ms to 5m' })
})

t.test('certificate lifetimes: a day by default, from a second to a year', async (t) => {
  t.equal(CERT_TTL.defaultMs, 86_400_000)
  t.equal(parseCertTtl('6s', 'x'), 6000)
  t.equal(parseCertTtl('365d', 'x'), CERT_TTL.maxMs)
  t.equal(parseCertTtl('6', 'x'), 6000, 'seconds, as for every duration')
  t.throws(() => parseCertTtl('500ms', '--cert-ttl'), { code: 'FERRY_ERR_INVALID_ARG', message: '--cert-ttl "500ms" is invalid: expected a duration from 1s to 365d' })
  t.throws(() => parseCertTtl('366d', '--cert-ttl'), { code: 'FERRY_ERR_INVALID_ARG', message: /from 1s to 365d/ })
})

t.test('formatDuration writes what parseDuration reads', async (t) => {
  t.equal(formatDuration(86_400_000), '24h')
  t.equal(formatDuration(5_415_000), '1h30m15s')
  t.equal(formatDuration(1500), '1500ms')
  t.equal(formatDuration(0), '0s')
  t.equal(formatDuration(365 * 86_400_000), '365d', '48 hours and more in days')
  t.equal(formatDuration(2 * 86_400_000 + 3_600_000), '2d1h')
  for (const ms of [0, 1, 999, 1000, 90_061_000, 86_400_000, 2 * 86_400_000 + 1000, 365 * 86_400_000]) t.equal(parseDuration(formatDuration(ms), 'x'), ms, formatDuration(ms))
})
