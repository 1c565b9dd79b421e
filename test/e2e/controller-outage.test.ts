import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCaOutage } from '../../src/lab/drills/ca-outage'
import { outageLabManifest } from '../../src/lab/drills/outage-lab'
import { runRestartUnderLoad } from '../../src/lab/drills/restart-under-load'
import { ferry, ferryOk } from '../helpers/cli'
import { uniqueLabName } from '../helpers/names'

// The controller restarted, and then away across the agents' first renewal, under a
// steady load from node1's client to node2's server (src/lab/drills/outage-lab.ts). The
// outage is the soak's scenario (`npm run soak -- --scenario ca-outage`, 20-minute
// certificates, 10 minutes down) scaled down to 60-second certificates: the controller
// stops 10 s before the first renewal (at half the lifetime) and is started again 12 s
// before the earliest expiry (~28 s down; starting it takes seconds on a loaded machine),
// so every renewal fails, none can be skipped, and the agents must recover on their own
// before their certificates run out. (The soak runs the lab as on a
// cluster, --kubernetes-api, where the configuration stream drops and reconnects too;
// here the agents read a config directory, and test/controller/config-stream-restart.test.ts
// kills the controller under a connected stream.)

const lab = uniqueLabName('e2eout')
const LIFETIME = '60s'
const RATE = 20
const dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-outage-'))

t.setTimeout(300_000)
t.before(async () => {
  writeFileSync(join(dir, 'lab.yaml'), outageLabManifest())
  await ferryOk(['lab', 'up', '--name', lab, '--cert-ttl', LIFETIME, join(dir, 'lab.yaml')], { timeoutMs: 180_000 })
})
t.teardown(async () => {
  await ferry(['lab', 'down', lab], { timeoutMs: 90_000 })
  rmSync(dir, { recursive: true, force: true })
})

t.test('a CA outage across the first renewal: traffic flows on the certificates in hand, failures are reported, renewal recovers without an agent restart', async (t) => {
  const r = await runCaOutage({
    lab,
    stopBeforeRenewalMs: 10_000,
    returnBeforeExpiryMs: 12_000,
    afterRecoveryMs: 3000,
    recoveryTimeoutMs: 20_000,
    streamReconnectTimeoutMs: 40_000,
    sampleEveryMs: 1000,
    rate: RATE,
    log: (line) => { t.comment(line) }
  })
  t.same(r.problems, [], 'every guarantee held')
  t.equal(r.load.failures, 0, `no failed request of ${r.load.requests}`)
  t.ok(r.load.requests >= 30 * RATE * 0.5, 'the load ran through the outage')
  t.ok(r.timeline.stoppedAt < r.timeline.firstRenewalDueAt && r.timeline.lastRenewalDueAt < r.timeline.returnedAt, 'every renewal was due while the controller was away')

  // During the outage: readiness stays 200 and says which renewal fails and when the certificate expires.
  t.ok(r.duringOutage !== null, 'the agents were read with every renewal failing')
  for (const n of r.duringOutage ?? []) {
    t.equal(n.readiness?.status, 200, `${n.node} ready on the certificates in hand`)
    const failing = n.readiness?.certificates?.failing ?? []
    t.ok(failing.length >= 1, `${n.node}: readiness lists the failing renewal`)
    for (const f of failing) {
      t.match(f, { code: 'FERRY_ERR_CA_UNAVAILABLE', failures: Number, since: String, notAfter: String }, `${n.node}: ${String(f.spiffeId)} failing, with its code and expiry`)
      t.ok(f.expiresInSeconds > 0, 'and the certificate still valid')
    }
    t.ok((n.renewalFailures ?? 0) > (r.renewalFailures.atStop[n.node] ?? 0), `${n.node}: ferry_certificate_renewal_failures_total grew (${String(r.renewalFailures.atStop[n.node])} → ${String(n.renewalFailures)})`)
    t.ok((n.earliestExpirySeconds ?? 0) > 0 && (n.earliestExpirySeconds ?? 0) <= 60, `${n.node}: ferry_certificate_earliest_expiry_seconds ${String(n.earliestExpirySeconds)}`)
  }
  // `ferry status --output json`, run as a user would.
  t.ok(r.statusDuring !== null, 'ferry status answered during the outage')
  for (const n of r.statusDuring?.nodes ?? []) {
    t.equal(n.ready, true, `status: ${String(n.node)} ready`)
    t.ok(n.certificates.length >= 1 && n.certificates.every((c: any) => c.failures?.count >= 1 && c.failures.code === 'FERRY_ERR_CA_UNAVAILABLE' && c.lastAttempt?.ok === false),
      `status: every certificate of ${String(n.node)} shows its failing renewal`)
  }

  // After: renewed (new serial, later notAfter, seen by ferry status), the counter still, the same agents.
  t.ok(r.recoverySeconds !== null, `renewed ${String(r.recoverySeconds)} s after the controller's return`)
  t.ok(r.timeline.recoveredAt !== null && r.timeline.recoveredAt <= r.timeline.earliestExpiryAt, 'before any certificate expired')
  for (const n of r.statusAfter?.nodes ?? []) {
    const before = r.before[n.node]
    t.equal(n.certificates.length, before.length, `${String(n.node)}: the same identities`)
    for (const c of n.certificates) {
      const old = before.find((o) => o.spiffeId === c.spiffeId)
      t.ok(old !== undefined && c.serial !== old.serial && Date.parse(c.notAfter) > Date.parse(old.notAfter ?? ''), `status: ${String(c.spiffeId)} renewed (serial ${String(old?.serial)} → ${String(c.serial)})`)
      t.equal(c.failures, null, 'no failure since')
    }
  }
  for (const n of r.statusAfter?.nodes ?? []) t.ok(typeof n.configGeneration === 'number', `status: ${String(n.node)} has a configuration in force (generation ${String(n.configGeneration)})`)
  for (const node of Object.keys(r.renewalFailures.atEnd)) t.equal(r.renewalFailures.atEnd[node], r.renewalFailures.atRecovery[node], `${node}: no renewal failure after recovery`)
  t.same(r.agentPids.after, r.agentPids.before, 'the same agents: no restart')
  t.ok(Object.values(r.agentPids.after).every((p) => p !== null && existsSync(`/proc/${p}`)), 'still running')
})

t.test('a controller restart under a steady load through two nodes fails no request', async (t) => {
  const r = await runRestartUnderLoad({ lab, rate: RATE, downForMs: 2000, settleMs: 2000 })
  t.ok(r.oldPids >= 1, 'a running controller was killed')
  t.ok(r.newPid !== undefined, 'and a new one started')
  t.ok(r.duringRestart > 0, `${r.duringRestart} requests answered while it was down and starting`)
  t.ok(r.load.requests >= 4 * RATE, `${r.load.requests} requests in all`)
  t.equal(r.load.failures, 0, `no failed request (${JSON.stringify(r.load.errors)})`)
})
