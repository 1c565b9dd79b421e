import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { Registry } from 'prom-client'
import pino from 'pino'
import type { CertificateSigner } from '../../src/identity/ca-client'
import { CertificateManager, type RetryEvent, type RotatedEvent } from '../../src/identity/certificate-manager'
import type { Svid } from '../../src/identity/svid'
import { CERT_BACKDATE_MS } from '../../src/controller/root-ca'
import { startCa } from '../controller/harness'
import { waitFor } from '../helpers/wait'

// The agent's certificate manager against a real controller over gRPC + TLS: first
// issue, renewal at half the lifetime with the old certificate served until the new
// one is in hand, and backoff while the CA is away, recovering without a restart.

const WEB = 'spiffe://cluster.local/ns/app/sa/web'
const DB = 'spiffe://cluster.local/ns/data/sa/db'
const silent = pino({ level: 'silent' })
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('obtains an SVID for an identity of its node, exposes it, and reports its expiry as a metric', async (t) => {
  const ca = await startCa(t)
  const registry = new Registry()
  const manager = new CertificateManager({ signer: ca.client('n1'), log: silent, registry, ttlMs: 600_000 })
  t.teardown(() => { manager.close() })
  const rotated: RotatedEvent[] = []
  manager.on('rotated', (e) => rotated.push(e))
  t.equal(manager.ready(), true, 'nothing to wait for yet')
  manager.add(WEB)
  t.equal(manager.ready(), false)
  const svid = await manager.whenReady(WEB)
  t.equal(manager.current(WEB), svid)
  t.equal(manager.ready(), true)
  t.equal(rotated.length, 1)
  t.equal(rotated[0].previous, null)
  t.equal(svid.spiffeId.uri, WEB)
  t.same(svid.bundle, [ca.controller.rootCertPem])
  t.equal(svid.chain.length, 1, 'the leaf only: the root is not sent to peers')
  t.match(svid.key, /^-----BEGIN PRIVATE KEY-----/)
  const leaf = new X509Certificate(svid.chain[0])
  t.ok(leaf.verify(new X509Certificate(ca.controller.rootCertPem).publicKey))
  t.equal(svid.notAfter - svid.notBefore, 600_000 + CERT_BACKDATE_MS, 'the lifetime asked for, plus the backdating')

  const text = await registry.metrics()
  t.match(text, `ferry_certificate_expiry_timestamp_seconds{spiffe_id="${WEB}"} ${Math.floor(svid.notAfter / 1000)}`)
  t.match(text, 'ferry_certificate_requests_total{result="issued"} 1')
  manager.remove(WEB)
  t.notMatch(await registry.metrics(), `spiffe_id="${WEB}"`, 'gone with the identity')
  t.equal(manager.current(WEB), null)
})

t.test('renews at half the lifetime and serves the old certificate until the new one is in hand', async (t) => {
  const ca = await startCa(t)
  const real = ca.client('n1')
  // The real client, with a gate the test can close to hold a renewal in flight.
  let gate: Promise<void> = Promise.resolve()
  const signer: CertificateSigner = { createCertificate: async (csr, secs) => { await gate; return await real.createCertificate(csr, secs) } }
  const manager = new CertificateManager({ signer, log: silent, ttlMs: 2000 })
  t.teardown(() => { manager.close() })
  const rotations: Array<RotatedEvent & { at: number }> = []
  manager.on('rotated', (e) => rotations.push({ ...e, at: Date.now() }))
  manager.add(WEB)
  await manager.whenReady(WEB)

  // Sample what is served, every few ms, for a while: never nothing, never expired.
  const served: Array<{ at: number, svid: Svid | null }> = []
  const sampler = setInterval(() => { served.push({ at: Date.now(), svid: manager.current(WEB) }) }, 10)
  await waitFor(() => rotations.length >= 4, { timeoutMs: 6000, what: 'three renewals' })

  // Hold the next renewal: the certificate in hand stays current past its renewal time.
  let open: () => void = () => {}
  gate = new Promise((resolve) => { open = resolve })
  const held = manager.current(WEB) as Svid
  const heldRenewAt = Math.max(held.notBefore, rotations[rotations.length - 1].at) + (held.notAfter - Math.max(held.notBefore, rotations[rotations.length - 1].at)) / 2
  await waitFor(() => Date.now() > heldRenewAt + 150, { what: 'the renewal time of the held certificate' })
  t.equal(manager.current(WEB), held, 'still serving the old certificate while the renewal is in flight')
  const before = rotations.length
  open()
  await waitFor(() => rotations.length > before, { what: 'the held renewal' })
  clearInterval(sampler)
  t.not(manager.current(WEB), held, 'the new certificate replaced it')

  for (let i = 1; i < rotations.length; i++) {
    const { at, svid, previous } = rotations[i]
    t.ok(previous !== null && at < previous.notAfter, `renewal ${i} arrived before the old certificate expired`)
    // Due at half of what was left of the previous certificate's life when it arrived.
    const start = Math.max((previous as Svid).notBefore, rotations[i - 1].at)
    const due = start + ((previous as Svid).notAfter - start) / 2
    t.ok(at >= due - 25, `renewal ${i} not before half the lifetime (${Math.round(at - due)} ms after)`)
    const life = svid.notAfter - svid.notBefore - CERT_BACKDATE_MS
    t.ok(life <= 2000, `lifetime ${life} ms <= requested (after the backdating)`)
  }
  t.ok(served.length > 50)
  t.ok(served.every((s) => s.svid !== null && s.at <= s.svid.notAfter), 'a valid certificate was served at every sample')
  t.ok(new Set(rotations.map((r) => r.svid.serial)).size === rotations.length, 'each renewal is a new certificate')
})

t.test('CA stopped: retries with exponential backoff, keeps the certificate, recovers without a restart', async (t) => {
  const ca = await startCa(t)
  const client = ca.client('n1', { reconnect: { initial: 100, max: 400 } })
  const manager = new CertificateManager({
    signer: client,
    log: silent,
    ttlMs: 3000,
    backoff: { initialMs: 100, maxMs: 400, multiplier: 2, jitter: 0.5 },
    random: () => 0 // no jitter: the delays are exactly the ceilings
  })
  t.teardown(() => { manager.close() })
  const retries: RetryEvent[] = []
  const rotations: RotatedEvent[] = []
  const expired: string[] = []
  manager.on('retry', (e) => retries.push(e))
  manager.on('rotated', (e) => rotations.push(e))
  manager.on('expired', (e) => expired.push(e.svid.serial))
  manager.add(WEB)
  const first = await manager.whenReady(WEB)

  await ca.stop()
  await waitFor(() => retries.length >= 5, { timeoutMs: 8000, what: 'five retries' })
  // While the certificate in hand is valid (1.5 s left at the renewal), no retry waits
  // more than a tenth of its time left, nor less than the initial delay.
  const ceilings = [100, 200, 400, 400, 400]
  t.ok(retries.slice(0, 5).every((r, i) => r.delayMs >= 100 && r.delayMs <= Math.min(ceilings[i], 150)), `paced by the time left: ${retries.slice(0, 5).map((r) => r.delayMs).join(', ')} ms`)
  t.same(retries.map((r) => r.attempt).slice(0, 5), [1, 2, 3, 4, 5])
  t.ok(retries.every((r) => r.error.code === 'FERRY_ERR_CA_UNAVAILABLE'), 'the CA is unreachable')
  t.equal(manager.current(WEB), first, 'the certificate in hand stays current')
  await waitFor(() => expired.length === 1, { timeoutMs: 5000, what: 'the first certificate to expire' })
  t.same(expired, [first.serial], 'expiry with no successor is reported')
  t.equal(manager.ready(), false, 'not ready with an expired certificate')
  const afterExpiry = retries.length
  await waitFor(() => retries.length >= afterExpiry + 2, { timeoutMs: 5000, what: 'retries after the expiry' })
  t.equal(retries[retries.length - 1].delayMs, 400, 'past expiry: the backoff\'s own delays (exponential, capped)')

  const n = rotations.length
  await ca.restart()
  await waitFor(() => rotations.length > n, { timeoutMs: 5000, what: 'recovery' })
  const next = manager.current(WEB) as Svid
  t.not(next, first)
  t.equal(rotations[rotations.length - 1].previous, first)
  t.same(next.bundle, first.bundle, 'same root after the controller restart')
  t.equal(manager.ready(), true)
  const failed = retries.length
  await sleep(300)
  t.equal(retries.length, failed, 'no more retries once recovered')
})

t.test('refused while the pod is not on the node; issued once it is', async (t) => {
  const ca = await startCa(t)
  const manager = new CertificateManager({ signer: ca.client('n1'), log: silent, ttlMs: 60_000, backoff: { initialMs: 50, maxMs: 200 }, random: () => 0 })
  t.teardown(() => { manager.close() })
  const retries: RetryEvent[] = []
  manager.on('retry', (e) => retries.push(e))
  manager.add(DB)
  await waitFor(() => retries.length >= 2, { what: 'a refusal' })
  t.match(retries[0].error, { code: 'FERRY_ERR_CA_REFUSED', message: /PERMISSION_DENIED: FERRY_ERR_AUTHZ: node n1 may not obtain spiffe:\/\/cluster.local\/ns\/data\/sa\/db/ })
  ca.writePods([{ name: 'db', namespace: 'data', node: 'n1', serviceAccountName: 'db' }])
  const svid = await manager.whenReady(DB)
  t.equal(svid.spiffeId.uri, DB)
})

t.test('bad settings and bad IDs are refused up front', async (t) => {
  const signer: CertificateSigner = { createCertificate: async () => [] }
  t.throws(() => new CertificateManager({ signer, log: silent, ttlMs: 10 }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => new CertificateManager({ signer, log: silent, renewFraction: 1 }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => new CertificateManager({ signer, log: silent, backoff: { initialMs: 0 } }), { code: 'FERRY_ERR_INVALID_ARG' })
  const m = new CertificateManager({ signer, log: silent })
  t.throws(() => { m.add('spiffe://cluster.local/web') }, { code: 'FERRY_ERR_SPIFFE_ID' })
  await t.rejects(m.whenReady(WEB), { code: 'FERRY_ERR_INVALID_ARG' })
  m.close()
})

t.test('a renewal failing while the CA is away: the failures are counted and described, the earliest expiry is a gauge, success clears them', async (t) => {
  const ca = await startCa(t)
  const registry = new Registry()
  const manager = new CertificateManager({ signer: ca.client('n1', { reconnect: { initial: 100, max: 400 } }), log: silent, registry, ttlMs: 4000, backoff: { initialMs: 100, maxMs: 400 }, random: () => 0 })
  t.teardown(() => { manager.close() })
  manager.add(WEB)
  const first = await manager.whenReady(WEB)
  const ok = manager.status(WEB)
  t.equal(ok?.failures, null, 'no failure yet')
  t.match(ok?.lastAttempt, { ok: true })
  const arrived = ok?.lastAttempt?.at ?? 0
  t.ok(ok?.nextAttemptAt != null && Math.abs((ok.nextAttemptAt as number) - (arrived + (first.notAfter - arrived) / 2)) < 100, 'the renewal is scheduled at half the time left on arrival')
  const gauge = async (name: string): Promise<number> => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await registry.metrics())?.[1])
  t.equal(await gauge('ferry_certificate_renewal_failures_total'), 0)
  const left = await gauge('ferry_certificate_earliest_expiry_seconds')
  t.ok(left > 0 && left <= 4, `earliest expiry in ${left} s`)
  t.match(await registry.metrics(), `ferry_certificate_earliest_expiry_seconds{spiffe_id="${WEB}"}`, 'with the identity it is')

  await ca.stop()
  await waitFor(() => (manager.status(WEB)?.failures?.count ?? 0) >= 3, { timeoutMs: 8000, what: 'three failed renewals' })
  const failing = manager.status(WEB)
  t.match(failing?.failures, { code: 'FERRY_ERR_CA_UNAVAILABLE', error: /CreateCertificate/ })
  t.ok((failing?.failures?.since ?? 0) <= (failing?.lastAttempt?.at ?? 0), 'since the first failure')
  t.equal(failing?.lastAttempt?.ok, false)
  t.equal(failing?.svid, first, 'with the certificate in hand')
  t.ok(await gauge('ferry_certificate_renewal_failures_total') >= 3, 'counted as renewal failures')

  await ca.restart()
  await waitFor(() => manager.current(WEB) !== first, { timeoutMs: 8000, what: 'the renewal' })
  t.equal(manager.status(WEB)?.failures, null, 'cleared by the success')
  const counted = await gauge('ferry_certificate_renewal_failures_total')
  await sleep(300)
  t.equal(await gauge('ferry_certificate_renewal_failures_total'), counted, 'and no longer growing')
})

t.test('a first certificate that cannot be obtained is not a renewal failure', async (t) => {
  const registry = new Registry()
  const signer: CertificateSigner = { createCertificate: async () => { throw new Error('down') } }
  const manager = new CertificateManager({ signer, log: silent, registry, ttlMs: 60_000, backoff: { initialMs: 20, maxMs: 40 } })
  t.teardown(() => { manager.close() })
  manager.add(WEB)
  await waitFor(() => (manager.status(WEB)?.failures?.count ?? 0) >= 2, { what: 'two failed requests' })
  const text = await registry.metrics()
  t.match(text, /^ferry_certificate_renewal_failures_total 0$/m)
  t.notMatch(text, /^ferry_certificate_earliest_expiry_seconds /m, 'no certificate: no earliest expiry')
})
