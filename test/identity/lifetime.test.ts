import t from 'tap'
import { CERT_BACKDATE_MS } from '../../src/controller/root-ca'
import { CertificateManager } from '../../src/identity/certificate-manager'
import { createClock } from '../../src/identity/clock'
import type { CertificateSigner } from '../../src/identity/ca-client'
import { parseCsr } from '../../src/identity/csr'
import { MAX_TIMER_MS, setLongTimer, type TimerFunctions } from '../../src/util/long-timer'
import { captureLog, startCa } from '../controller/harness'
import { testCa } from './certs'
import { waitFor } from '../helpers/wait'

// Honest certificate lifetimes:
//   - certificates are backdated (CERT_BACKDATE_MS), so an agent whose clock is behind
//     the controller's accepts a fresh one, while renewal stays at half the lifetime
//     counted from issuance;
//   - lifetimes past setTimeout's limit (2^31 − 1 ms ≈ 24.8 days) neither fire early nor
//     spin: every long timer is re-armed in steps by setLongTimer.

const WEB = 'spiffe://cluster.local/ns/app/sa/web'
const DAY = 86_400_000

/** Timer primitives driven by hand: arms are recorded, time advances when the test says. */
function manualTimers (): TimerFunctions & { now: () => number, arms: number[], advance: (ms: number) => void } {
  let now = Math.floor(Date.now() / 1000) * 1000
  let seq = 0
  const pending = new Map<number, { at: number, fn: () => void }>()
  const arms: number[] = []
  return {
    now: () => now,
    arms,
    setTimeout: (fn, ms) => {
      arms.push(ms)
      const id = ++seq
      pending.set(id, { at: now + ms, fn })
      return id
    },
    clearTimeout: (id) => { pending.delete(id as number) },
    advance (ms) {
      const until = now + ms
      for (;;) {
        let next: [number, { at: number, fn: () => void }] | null = null
        for (const e of pending) if (e[1].at <= until && (next === null || e[1].at < next[1].at)) next = e
        if (next === null) break
        pending.delete(next[0])
        now = next[1].at
        next[1].fn()
      }
      now = until
    }
  }
}

t.test('a 60-day timer fires once, after 60 days, in three arms of at most 2^31 − 1 ms (without the helper setTimeout would fire at once, and re-arming it would spin)', async (t) => {
  const timers = manualTimers()
  let fired = 0
  setLongTimer(() => { fired++ }, 60 * DAY, timers)
  timers.advance(60 * DAY - 1)
  t.equal(fired, 0, 'not a millisecond early')
  timers.advance(1)
  t.equal(fired, 1, 'fires at 60 days')
  t.same(timers.arms, [MAX_TIMER_MS, MAX_TIMER_MS, 60 * DAY - 2 * MAX_TIMER_MS], 're-armed twice, every step within the limit')
  timers.advance(365 * DAY)
  t.equal(fired, 1, 'and only once')
  t.equal(timers.arms.length, 3, 'no arm afterwards')

  const cleared = setLongTimer(() => { fired++ }, 60 * DAY, timers)
  timers.advance(30 * DAY)
  cleared.clear()
  timers.advance(60 * DAY)
  t.equal(fired, 1, 'cleared between steps: never fires')
  t.equal(timers.arms.length, 5, 'and is not re-armed')

  const short: number[] = []
  setLongTimer(() => { short.push(timers.now()) }, 5, timers)
  setLongTimer(() => { short.push(-1) }, -10, timers)
  timers.advance(10)
  t.equal(short.length, 2, 'short and negative delays behave like setTimeout')
})

t.test('with 60-day certificates the manager renews at 30 days and reports expiry at 60, without an early or a busy timer', async (t) => {
  const timers = manualTimers()
  const ca = await testCa()
  let issued = 0
  // The real issuer behind a signer whose "now" is the manual clock's.
  const signer: CertificateSigner = {
    createCertificate: async (csrPem, ttlSeconds) => {
      issued++
      const csr = await parseCsr(csrPem)
      const leaf = await ca.issuer.issueWorkload(csr, csr.spiffeId, ttlSeconds * 1000, timers.now())
      return ca.issuer.chainOf(leaf.pem)
    }
  }
  const { log } = captureLog()
  const manager = new CertificateManager({ signer, log, ttlMs: 60 * DAY, clock: createClock(timers.now, timers), random: () => 0 })
  t.teardown(() => { manager.close() })
  const expired: string[] = []
  manager.on('expired', (e) => expired.push(e.svid.serial))
  manager.add(WEB)
  timers.advance(0)
  const first = await manager.whenReady(WEB)
  t.equal(issued, 1)
  t.equal(first.notAfter - timers.now(), 60 * DAY, 'a 60-day certificate')
  const armsAfterIssue = timers.arms.length

  // Hold every later request, so the first certificate runs out with no successor.
  let renewals = 0
  signer.createCertificate = async () => { renewals++; return await new Promise(() => {}) }
  timers.advance(30 * DAY - 1)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(renewals, 0, 'no renewal a millisecond before half the lifetime')
  timers.advance(1)
  await waitFor(() => renewals > 0, { timeoutMs: 5000, what: 'the renewal request' })
  t.equal(renewals, 1, 'the renewal is asked for at 30 days')
  t.same(expired, [], 'not expired at 30 days')
  timers.advance(30 * DAY - 1)
  t.same(expired, [], 'not a millisecond early')
  timers.advance(2)
  t.same(expired, [first.serial], 'expired just after 60 days')
  t.ok(timers.arms.every((ms) => ms <= MAX_TIMER_MS), 'no timer asked for more than setTimeout can hold')
  // Issue: renewal and expiry armed (one step each); then one more step for the renewal
  // and two for the expiry.
  t.equal(timers.arms.length - armsAfterIssue, 3, `a handful of arms in 60 days, not a loop (${JSON.stringify(timers.arms)})`)
})

t.test('certificates are backdated by a minute; renewal stays at half the lifetime counted from issuance', async (t) => {
  const ca = await startCa(t)
  const { log, lines } = captureLog()
  const ttlMs = 600_000
  const before = Date.now()
  const manager = new CertificateManager({ signer: ca.client('n1'), log, ttlMs })
  t.teardown(() => { manager.close() })
  manager.add(WEB)
  const svid = await manager.whenReady(WEB)
  t.ok(svid.notBefore <= before - 55_000, `notBefore ${before - svid.notBefore} ms before the request (≥ 55 s)`)
  t.equal(CERT_BACKDATE_MS, 60_000, 'the documented minute')
  t.ok(svid.notAfter - before >= ttlMs - 1000 && svid.notAfter - Date.now() <= ttlMs, 'the lifetime asked for, counted from issuance')
  const inUse = lines.find((l) => l.msg === 'certificate in use') as { renewInMs: number } | undefined
  t.ok(inUse !== undefined)
  const renewInMs = (inUse as { renewInMs: number }).renewInMs
  t.ok(renewInMs >= ttlMs / 2 - 1500 && renewInMs <= ttlMs / 2, `renewal in ${renewInMs} ms: half of the 10 min lifetime, not of lifetime + backdating`)
})

t.test('an agent whose clock is 30 s behind the controller accepts a fresh certificate (it would be "not yet valid" without the backdating)', async (t) => {
  const ca = await startCa(t)
  const { log } = captureLog()
  const behind = createClock(() => Date.now() - 30_000)
  const manager = new CertificateManager({ signer: ca.client('n1'), log, ttlMs: 600_000, clock: behind, backoff: { initialMs: 10_000, maxMs: 10_000 } })
  t.teardown(() => { manager.close() })
  const retries: string[] = []
  manager.on('retry', (e) => retries.push(e.error.message))
  manager.add(WEB)
  const svid = await Promise.race([manager.whenReady(WEB), new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))])
  t.same(retries, [], 'no request failed')
  t.not(svid, null, 'the certificate is in use')
  t.equal(manager.ready(), true)
})
