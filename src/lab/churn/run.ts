import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ferryError } from '../../errors'
import { getAgentJson, labAgentEndpoint } from '../agent-admin'
import { labAgentResources, type AgentResources } from '../agent-resources'
import { labApplyFiles, labDeleteFiles } from '../apply'
import { Deadline, sleep } from '../clock'
import { loadLab } from '../labs'
import { compareResources, leaks, type ResourceDrift } from './drift'
import { startSurvivors, type SurvivorOptions, type SurvivorReport } from './survivors'
import { writeWave, type Wave } from './waves'

// A churn run on a lab made from examples/churn/churn.yaml: while the surviving pods'
// clients keep their connections busy, a warm-up wave is created and deleted, the
// agent's resources are read (the baseline), then `pods` pods are created and deleted
// in waves of `wave` on the node — wave i is created while wave i-1 is deleted, so pods
// come and go beside others that stay — and, once the agent has let the last of them
// go and a settle time passed (and /metrics was scraped, as Prometheus would), its
// resources are read again (after a full garbage collection) and compared with the
// baseline. The guarantee holds when every resource is back within the tolerance and no
// request or connection of a surviving pod failed.

export interface ChurnOptions {
  readonly lab: string
  readonly node: string
  readonly namespace: string
  /** Pods created and deleted after the baseline (a multiple of `wave`). */
  readonly pods: number
  readonly wave: number
  /** Fraction of its baseline each resource may differ by afterwards (0.05). */
  readonly tolerance: number
  /** Wait after the last pod is gone before reading the resources again. */
  readonly settleMs: number
  /** Reads of the resources after the settle time, `settleMs` apart, until one is within bounds. */
  readonly reads: number
  /** Bound on one wave's apply (its pods started and enrolled) and on the agent letting pods go. */
  readonly waveTimeoutMs: number
  readonly survivors: Omit<SurvivorOptions, 'maxSeconds'>
  /**
   * Requests from the same clients to the churned pods (the Service `churn`), on new
   * connections: their endpoints come and go under the traffic. Reported, never counted
   * against the guarantee (a request to a pod being deleted may fail); null: none.
   */
  readonly churnTraffic: { readonly url: string, readonly pauseMs: number } | null
  /** Bound on the whole run: the clients stop by themselves after it. */
  readonly maxSeconds: number
  readonly say?: (line: string) => void
}

export interface WaveFigures {
  readonly index: number
  readonly pods: number
  readonly applyMs: number
  /** Deleting the wave before it, at the same time (0 for the first). */
  readonly deleteMs: number
  /** The 1-minute load average after the wave. */
  readonly load1: number
}

export interface ChurnResult {
  /** Pods created and deleted after the baseline (the warm-up wave not counted). */
  readonly churned: number
  readonly waves: readonly WaveFigures[]
  readonly baseline: AgentResources
  /** With the first wave's pods enrolled. */
  readonly peak: AgentResources
  readonly after: AgentResources
  readonly drifts: readonly ResourceDrift[]
  readonly survivors: readonly SurvivorReport[]
  readonly churnTraffic: readonly SurvivorReport[]
  /** Why the guarantee did not hold (empty: it held). */
  readonly failures: readonly string[]
  readonly seconds: number
  readonly load1: { readonly min: number, readonly max: number, readonly mean: number }
}

/** A wait for the agent's traffic to be under way before the warm-up wave. */
const TRAFFIC_START_MS = 3000

export async function runChurn (o: ChurnOptions): Promise<ChurnResult> {
  if (!Number.isInteger(o.wave) || o.wave < 1 || !Number.isInteger(o.pods) || o.pods < o.wave || o.pods % o.wave !== 0) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `pods (${o.pods}) must be a positive multiple of wave (${o.wave})`)
  }
  const say = o.say ?? (() => {})
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'ferry-churn-'))
  const loads: number[] = []
  const survivors = startSurvivors(loadLab(o.lab), { ...o.survivors, maxSeconds: o.maxSeconds })
  const toChurned = o.churnTraffic === null ? null : startSurvivors(loadLab(o.lab), { ...o.survivors, ...o.churnTraffic, connections: 1, maxSeconds: o.maxSeconds })
  let reports: SurvivorReport[] | null = null
  try {
    await sleep(TRAFFIC_START_MS)
    const kept = await enrolledCount(o)
    say(`warm-up: a wave of ${o.wave} pods beside ${kept} enrolled`)
    const warm = writeWave(dir, 0, o.wave, o.namespace, o.node)
    await apply(o, warm)
    await remove(o, warm)
    await waitEnrolled(o, kept)
    for (let i = 0; i < 2; i++) await scrapeMetrics(o)
    const baseline = await labAgentResources(o.lab, o.node)
    say(`baseline: ${summary(baseline)}`)

    const waves: WaveFigures[] = []
    let previous: Wave | null = null
    let peak: AgentResources | null = null
    for (let i = 1; i <= o.pods / o.wave; i++) {
      const wave = writeWave(dir, i, o.wave, o.namespace, o.node)
      // The wave before goes while this one comes: enrollments and unenrollments interleave.
      const before = previous
      const [applyMs, deleteMs] = await Promise.all([timed(async () => { await apply(o, wave) }), before === null ? 0 : timed(async () => { await remove(o, before) })])
      peak ??= await labAgentResources(o.lab, o.node)
      previous = wave
      const load1 = loadavg()[0]
      loads.push(load1)
      waves.push({ index: i, pods: o.wave, applyMs, deleteMs, load1 })
      say(`wave ${i}: ${o.wave} pods created in ${applyMs} ms${before === null ? '' : `, wave ${before.index} deleted meanwhile in ${deleteMs} ms`} (load ${load1.toFixed(2)})`)
    }
    if (previous !== null) await remove(o, previous)
    await waitEnrolled(o, kept)

    let after: AgentResources
    let drifts: ResourceDrift[]
    let read = 0
    do {
      await sleep(o.settleMs)
      // Scraped as Prometheus would: Istio series of the workloads that left are exported
      // once more, then dropped (src/telemetry/series-retirement.ts).
      for (let i = 0; i < 2; i++) await scrapeMetrics(o)
      after = await labAgentResources(o.lab, o.node)
      drifts = compareResources(baseline, after, o.tolerance)
      read++
      say(`after (read ${read}): ${summary(after)}${leaks(drifts).length === 0 ? '' : `; out of bounds: ${leaks(drifts).map((d) => d.resource).join(', ')}`}`)
    } while (leaks(drifts).length > 0 && read < o.reads)

    reports = await survivors.stop()
    const churnTraffic = await toChurned?.stop() ?? []
    const failures = [
      ...leaks(drifts).map((d) => `${d.resource}: ${d.after} after, ${d.baseline} at the baseline (±${Math.floor(d.allowed)} allowed)`),
      ...survivorFailures(reports)
    ]
    const l = loads.length === 0 ? [loadavg()[0]] : loads
    return {
      churned: o.pods,
      waves,
      baseline,
      peak: peak ?? baseline,
      after,
      drifts,
      survivors: reports,
      churnTraffic,
      failures,
      seconds: (Date.now() - started) / 1000,
      load1: { min: Math.min(...l), max: Math.max(...l), mean: l.reduce((a, b) => a + b, 0) / l.length }
    }
  } finally {
    if (reports === null) await Promise.all([survivors.stop(), toChurned?.stop()]).catch(() => [])
    rmSync(dir, { recursive: true, force: true })
  }
}

/** What of the surviving pods' traffic failed: any failure, or a client that answered nothing (no traffic ran). */
export function survivorFailures (reports: readonly SurvivorReport[]): string[] {
  const out: string[] = []
  for (const r of reports) {
    if (r.failed > 0) out.push(`${r.pod}: ${r.failed} failures of ${r.requests} requests on ${r.connections} connections (${JSON.stringify(r.errors)})`)
    else if (r.ok === 0) out.push(`${r.pod}: no request answered (no traffic ran)`)
  }
  return out
}

async function apply (o: ChurnOptions, wave: Wave): Promise<void> {
  await labApplyFiles(loadLab(o.lab), [wave.file], { timeoutMs: o.waveTimeoutMs })
}

async function remove (o: ChurnOptions, wave: Wave): Promise<void> {
  await labDeleteFiles(loadLab(o.lab), [wave.file])
}

/** Pods the node's agent has enrolled now (its /debug/pods). */
async function enrolledCount (o: ChurnOptions): Promise<number> {
  const endpoint = labAgentEndpoint(o.lab, o.node)
  try {
    const r = await getAgentJson(endpoint, '/debug/pods', { timeoutMs: 10_000 })
    if (r.status !== 200 || !Array.isArray(r.body?.pods)) throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `/debug/pods answered ${r.status}`)
    return r.body.pods.length
  } finally {
    endpoint.close()
  }
}

/** Waits until the agent has exactly `n` pods enrolled (the deleted ones let go). */
async function waitEnrolled (o: ChurnOptions, n: number): Promise<void> {
  const deadline = new Deadline(o.waveTimeoutMs)
  let now = -1
  while (!deadline.expired) {
    now = await enrolledCount(o)
    if (now === n) return
    await sleep(200)
  }
  throw ferryError('FERRY_ERR_LAB', `the agent of ${o.node} still has ${now} pods enrolled, not ${n}, ${o.waveTimeoutMs} ms after the deletes`)
}

/** GET /metrics from the node's agent (the text is not kept). */
async function scrapeMetrics (o: ChurnOptions): Promise<void> {
  const endpoint = labAgentEndpoint(o.lab, o.node)
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: endpoint.host, port: endpoint.port, path: '/metrics', headers: { connection: 'close' }, createConnection: () => endpoint.connect(10_000) }, (res) => {
        res.resume()
        res.on('end', resolve)
        res.on('error', reject)
      })
      req.setTimeout(30_000, () => { req.destroy(new Error('no answer from /metrics within 30 s')) })
      req.on('error', reject)
      req.end()
    })
  } finally {
    endpoint.close()
  }
}

async function timed (f: () => Promise<void>): Promise<number> {
  const t0 = Date.now()
  await f()
  return Date.now() - t0
}

function summary (r: AgentResources): string {
  const mib = (b: number | null): string => b === null ? '?' : `${(b / 2 ** 20).toFixed(1)} MiB`
  return `fds ${r.fds}, RSS ${mib(r.rssBytes)}, heap after GC ${mib(r.heapUsedAfterGcBytes)}, pinned links ${r.pinnedLinks}, cgroup attachments ${r.cgroupAttachments}, ferry_pods ${r.mapEntries.ferry_pods ?? '?'}`
}
