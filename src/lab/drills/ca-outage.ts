import { loadavg } from 'node:os'
import { ferryError } from '../../errors'
import type { NodeCertificate } from '../../status/node-status'
import { sleep } from '../clock'
import { loadLab } from '../labs'
import { startController, stopController } from '../restart'
import type { LabState } from '../state'
import { readNodes, type NodeReading } from './agent-readings'
import { ferryJson } from './ferry-cli'
import { OUTAGE_LAB } from './outage-lab'
import { SteadyLoad, type LoadTotals } from './steady-load'

// The CA outage across the agents' first renewal, on a running lab of outage-lab.ts made
// with `--cert-ttl L`. One implementation for the test suite (L = 60 s) and the soak
// (L = 20 min, `npm run soak -- --scenario ca-outage`):
//
//   1. a steady load from node1's client to node2's server, all along;
//   2. the controller stopped `stopBeforeRenewalMs` before the first certificate renewal
//      is due (renewals at half the lifetime: the agents' own schedule, read from
//      `/debug/certificates`), so every renewal falls in the outage;
//   3. kept down until `returnBeforeExpiryMs` before the earliest certificate expires,
//      reading the agents meanwhile: readiness must stay 200 with the failing renewals in
//      its detail, the renewal-failure counter must grow, `ferry status --output json`
//      must show the failures;
//   4. started again: every certificate must be renewed (a new serial) before it expires,
//      with no agent restarted; then the load goes on for `afterRecoveryMs` and the
//      failure counter must stay still. In a --kubernetes-api lab the agents also take
//      their configuration from the controller: the stream must have dropped during the
//      outage and be connected again by the end.
//
// Nothing here asserts: the result lists what did not hold (`problems`), and the caller
// (a test, the soak's report) decides.

export interface CaOutagePlan {
  readonly lab: string
  readonly stopBeforeRenewalMs: number
  readonly returnBeforeExpiryMs: number
  readonly afterRecoveryMs: number
  readonly recoveryTimeoutMs: number
  /** How long after the controller's return the configuration streams may take to reconnect (a --kubernetes-api lab). */
  readonly streamReconnectTimeoutMs: number
  /** How often the agents are read. */
  readonly sampleEveryMs: number
  /** Requests per second of the load. */
  readonly rate: number
  /** Progress lines, for a person watching. */
  readonly log?: (line: string) => void
}

export interface Sample {
  readonly at: number
  readonly controller: 'up' | 'down'
  /** The machine's 1-minute load average (what else ran). */
  readonly loadavg1: number
  readonly requests: number
  readonly failures: number
  readonly nodes: ReadonlyArray<{
    readonly node: string
    readonly ready: boolean
    readonly readinessStatus: number | null
    readonly failingRenewals: number
    readonly renewalFailures: number | null
    readonly earliestExpirySeconds: number | null
    readonly rssBytes: number | null
  }>
}

export interface CaOutageResult {
  readonly held: boolean
  readonly problems: string[]
  readonly load: LoadTotals
  readonly timeline: {
    readonly loadStartedAt: number
    readonly firstRenewalDueAt: number
    readonly lastRenewalDueAt: number
    readonly earliestExpiryAt: number
    readonly stoppedAt: number
    readonly returnedAt: number
    readonly recoveredAt: number | null
    readonly endedAt: number
  }
  readonly recoverySeconds: number | null
  /** When every configuration stream was connected again, from the controller's return (null: none, or never). */
  readonly streamReconnectSeconds: number | null
  /** Each node's certificates when the controller stopped, and once renewed. */
  readonly before: Record<string, NodeCertificate[]>
  readonly after: Record<string, NodeCertificate[]>
  /** The agents read once every renewal had failed, during the outage. */
  readonly duringOutage: NodeReading[] | null
  /** `ferry status --lab L --output json` then, and after recovery. */
  readonly statusDuring: any
  readonly statusAfter: any
  /** ferry_certificate_renewal_failures_total per node at each step. */
  readonly renewalFailures: Readonly<Record<'atStop' | 'atReturn' | 'atRecovery' | 'atEnd', Record<string, number | null>>>
  readonly agentPids: { readonly before: Record<string, number | null>, readonly after: Record<string, number | null> }
  /** ferry_config_stream_connected per node at each step (null: no configuration stream, a --config-dir lab). */
  readonly configStream: Readonly<Record<'atStop' | 'atReturn' | 'atEnd', Record<string, number | null>>>
  readonly samples: Sample[]
}

const SETTLE_MS = 1000
const PHASE_TRIES = 4

export async function runCaOutage (plan: CaOutagePlan): Promise<CaOutageResult> {
  const log = plan.log ?? (() => {})
  const state = loadLab(plan.lab)
  const problems: string[] = []
  const samples: Sample[] = []
  const ca: { controller: 'up' | 'down' } = { controller: 'up' }
  const pidsOf = (s: LabState): Record<string, number | null> => Object.fromEntries(s.plan.nodes.map((n) => [n.name, s.pids[`node/${n.name}`] ?? null]))
  const pidsBefore = pidsOf(state)

  // Long enough for everything; stop() ends it sooner.
  const load = SteadyLoad.start(state, { namespace: OUTAGE_LAB.namespace, pod: OUTAGE_LAB.client, url: OUTAGE_LAB.url, rate: plan.rate, durationMs: 4 * 3_600_000 })
  const loadStartedAt = Date.now()
  let sampling = true
  let latest: NodeReading[] = []
  const sampler = (async () => {
    while (sampling) {
      const readings = await readNodes(state)
      latest = readings
      const totals = load.totals
      samples.push({
        at: Date.now(),
        controller: ca.controller,
        loadavg1: loadavg()[0],
        requests: totals.requests,
        failures: totals.failures,
        nodes: readings.map((r) => ({
          node: r.node,
          ready: r.status.ready,
          readinessStatus: r.readiness?.status ?? null,
          failingRenewals: (r.readiness?.certificates?.failing ?? []).length,
          renewalFailures: r.renewalFailures,
          earliestExpirySeconds: r.earliestExpirySeconds,
          rssBytes: r.rssBytes
        }))
      })
      if (ca.controller === 'down') {
        for (const r of readings) {
          const expired = (r.status.certificates ?? []).some((c) => c.expired)
          // A read that timed out on a busy machine is not an answer.
          if (r.readiness !== null && r.readiness.status !== 200 && !expired) problems.push(`node ${r.node} answered readiness ${String(r.readiness?.status)} during the outage with valid certificates`)
        }
      }
      await sleep(plan.sampleEveryMs)
    }
  })()

  const counters = (rs: readonly NodeReading[]): Record<string, number | null> => Object.fromEntries(rs.map((r) => [r.node, r.renewalFailures]))
  const certsOf = (rs: readonly NodeReading[]): Record<string, NodeCertificate[]> => Object.fromEntries(rs.map((r) => [r.node, r.status.certificates ?? []]))
  try {
    await load.flowing(Math.max(5, plan.rate), 60_000)
    log(`load flowing at ${plan.rate}/s from ${OUTAGE_LAB.namespace}/${OUTAGE_LAB.client} on node1 to ${OUTAGE_LAB.url}`)

    // 2. When to stop: before the first renewal, with the whole window still ahead.
    let phase = schedule(await readNodes(state))
    for (let i = 0; phase.firstRenewalDueAt - plan.stopBeforeRenewalMs < Date.now() + SETTLE_MS; i++) {
      if (i >= PHASE_TRIES) throw ferryError('FERRY_ERR_LAB', 'no renewal cycle left room to stop the controller before it')
      log(`the first renewal is due in ${Math.round((phase.firstRenewalDueAt - Date.now()) / 1000)} s: too soon; waiting for the next cycle`)
      await sleep(Math.max(0, phase.lastRenewalDueAt - Date.now()) + 2 * SETTLE_MS)
      phase = schedule(await readNodes(state))
    }
    await sleep(phase.firstRenewalDueAt - plan.stopBeforeRenewalMs - Date.now())
    const atStop = await readNodes(state)
    phase = schedule(atStop)
    await stopController(state, { signal: 'SIGKILL' })
    ca.controller = 'down'
    const stoppedAt = Date.now()
    const returnAt = phase.earliestExpiryAt - plan.returnBeforeExpiryMs
    log(`controller stopped; renewals due in ${sec(phase.firstRenewalDueAt - stoppedAt)}–${sec(phase.lastRenewalDueAt - stoppedAt)}, earliest expiry in ${sec(phase.earliestExpiryAt - stoppedAt)}; back in ${sec(returnAt - stoppedAt)}`)
    if (stoppedAt >= phase.firstRenewalDueAt) problems.push('the controller stopped after the first renewal was due')
    if (phase.lastRenewalDueAt >= returnAt) problems.push('a renewal was due after the controller\'s return: not every renewal fell in the outage')

    // 3. The outage: once every certificate's renewal has failed, what the agents say.
    let duringOutage: NodeReading[] | null = null
    let statusDuring: any = null
    while (Date.now() < returnAt) {
      const rs = latest
      if (duringOutage === null && rs.length > 0 && rs.every((r) => (r.status.certificates ?? []).length > 0 && (r.status.certificates ?? []).every((c) => c.failures !== null && !c.expired))) {
        duringOutage = rs
        const cli = await ferryJson(['status', '--lab', plan.lab, '--output', 'json'])
        statusDuring = cli.json
        log(`every renewal failing: ${rs.map((r) => `${r.node} ${String(r.renewalFailures)} failure(s), readiness ${String(r.readiness?.status)}, earliest expiry in ${String(r.earliestExpirySeconds)} s`).join('; ')}`)
      }
      await sleep(Math.min(plan.sampleEveryMs, Math.max(0, returnAt - Date.now())))
    }
    if (duringOutage === null) problems.push('the agents never showed every renewal failing during the outage')
    const atReturn = await readNodes(state)

    // 4. The controller back: renewed before expiry, by the same agents.
    await startController(state, { timeoutMs: 60_000 })
    ca.controller = 'up'
    const returnedAt = Date.now()
    log(`controller started again ${sec(phase.earliestExpiryAt - returnedAt)} before the earliest expiry`)
    const renewed = (rs: readonly NodeReading[]): boolean => rs.every((r) => {
      const old = certsOf(atStop)[r.node] ?? []
      const now = r.status.certificates ?? []
      return now.length === old.length && now.every((c) => c.failures === null && c.serial !== null && old.every((o) => o.spiffeId !== c.spiffeId || o.serial !== c.serial))
    })
    let recoveredAt: number | null = null
    let atRecovery: NodeReading[] = atReturn
    while (Date.now() - returnedAt < plan.recoveryTimeoutMs) {
      const rs = await readNodes(state)
      if (renewed(rs)) { recoveredAt = Date.now(); atRecovery = rs; break }
      await sleep(250)
    }
    if (recoveredAt === null) problems.push(`the certificates were not all renewed within ${sec(plan.recoveryTimeoutMs)} of the controller's return`)
    else if (recoveredAt > phase.earliestExpiryAt) problems.push('a certificate expired before its renewal')
    log(recoveredAt === null ? 'no recovery' : `every certificate renewed ${sec(recoveredAt - returnedAt)} after the controller's return`)
    const statusAfter = (await ferryJson(['status', '--lab', plan.lab, '--output', 'json'])).json

    // The load goes on; a --kubernetes-api lab's configuration streams reconnect at their
    // own backoff's pace (up to RECONNECT_BACKOFF's 30 s after the controller's return).
    const usesStream = (r: NodeReading): boolean => atStop.find((x) => x.node === r.node)?.configStreamConnected != null
    const afterUntil = Date.now() + plan.afterRecoveryMs
    const streamDeadline = returnedAt + plan.streamReconnectTimeoutMs
    let atEnd = await readNodes(state)
    let streamsBackAt: number | null = null
    for (;;) {
      if (streamsBackAt === null && atEnd.every((r) => !usesStream(r) || r.configStreamConnected === 1)) streamsBackAt = Date.now()
      if (Date.now() >= afterUntil && (streamsBackAt !== null || Date.now() >= streamDeadline)) break
      await sleep(500)
      atEnd = await readNodes(state)
    }
    sampling = false
    await sampler
    const final = await load.stop()
    const endedAt = Date.now()
    const pidsAfter = pidsOf(loadLab(plan.lab))

    if (final.failures > 0) problems.push(`${final.failures} of ${final.requests} requests failed (first: ${JSON.stringify(final.errors.slice(0, 3))})`)
    for (const r of atReturn) {
      const before = counters(atStop)[r.node] ?? 0
      if (r.renewalFailures === null || r.renewalFailures <= before) problems.push(`node ${r.node}: the renewal-failure counter did not grow during the outage`)
    }
    const recoveryCounters = counters(atRecovery)
    for (const r of atEnd) {
      if (r.renewalFailures !== recoveryCounters[r.node]) problems.push(`node ${r.node}: the renewal-failure counter grew after recovery (${String(recoveryCounters[r.node])} → ${String(r.renewalFailures)})`)
    }
    const streams = (rs: readonly NodeReading[]): Record<string, number | null> => Object.fromEntries(rs.map((r) => [r.node, r.configStreamConnected]))
    for (const r of atEnd) {
      // A --kubernetes-api lab's agents take their configuration from the controller too.
      if (streams(atStop)[r.node] === null) continue
      if (streams(atReturn)[r.node] !== 0) problems.push(`node ${r.node}: its configuration stream did not notice the outage`)
      if (r.configStreamConnected !== 1) problems.push(`node ${r.node}: its configuration stream did not reconnect`)
    }
    for (const [node, pid] of Object.entries(pidsBefore)) if (pidsAfter[node] !== pid) problems.push(`node ${node}: the agent was restarted (pid ${String(pid)} → ${String(pidsAfter[node])})`)
    if (samples.some((s) => s.nodes.some((n) => n.readinessStatus !== 200 && n.readinessStatus !== null && s.controller === 'up'))) problems.push('an agent was not ready while the controller was up')

    return {
      held: problems.length === 0,
      problems: [...new Set(problems)],
      load: final,
      timeline: { loadStartedAt, firstRenewalDueAt: phase.firstRenewalDueAt, lastRenewalDueAt: phase.lastRenewalDueAt, earliestExpiryAt: phase.earliestExpiryAt, stoppedAt, returnedAt, recoveredAt, endedAt },
      recoverySeconds: recoveredAt === null ? null : (recoveredAt - returnedAt) / 1000,
      streamReconnectSeconds: streamsBackAt === null || !atStop.some(usesStream) ? null : (streamsBackAt - returnedAt) / 1000,
      before: certsOf(atStop),
      after: certsOf(atRecovery),
      duringOutage,
      statusDuring,
      statusAfter,
      renewalFailures: { atStop: counters(atStop), atReturn: counters(atReturn), atRecovery: recoveryCounters, atEnd: counters(atEnd) },
      agentPids: { before: pidsBefore, after: pidsAfter },
      configStream: { atStop: streams(atStop), atReturn: streams(atReturn), atEnd: streams(atEnd) },
      samples
    }
  } finally {
    sampling = false
    await sampler.catch(() => {})
    if (ca.controller === 'down') await startController(state, { timeoutMs: 60_000 }).catch(() => {})
    await load.stop().catch(() => {})
  }
}

/** When the agents will renew (their own schedule) and when the first certificate expires. */
function schedule (rs: readonly NodeReading[]): { firstRenewalDueAt: number, lastRenewalDueAt: number, earliestExpiryAt: number } {
  const certs = rs.flatMap((r) => r.status.certificates ?? [])
  const due = certs.map((c) => c.nextAttemptAt === null ? NaN : Date.parse(c.nextAttemptAt))
  const expiry = certs.map((c) => c.notAfter === null ? NaN : Date.parse(c.notAfter))
  if (certs.length === 0 || due.some(Number.isNaN) || expiry.some(Number.isNaN)) throw ferryError('FERRY_ERR_LAB', `the agents' certificates are not all in hand with a renewal scheduled: ${JSON.stringify(certs)}`)
  return { firstRenewalDueAt: Math.min(...due), lastRenewalDueAt: Math.max(...due), earliestExpiryAt: Math.min(...expiry) }
}

function sec (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
