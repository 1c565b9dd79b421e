import { loadavg } from 'node:os'
import { CLIENT, SERVER_PORT, type BenchPath, type Context } from '../lib/context'
import { Lab } from '../lib/lab'
import { rssBytes, rssSampler } from '../lib/proc'
import { concurrencySampler, threadCpu, threadSampler, threadSnapshot, type Concurrency, type ThreadCpu, type ThreadSnapshot } from '../lib/threads'
import { rotated } from '../report/alternated'
import { CONNECTIONS, keepaliveSpec } from './keepalive'
import { measureLoad, type Measured } from './measure'
import { newconnSpec } from './newconn'

// The cross-node loads with the agents at 1, 2 and 4 data-path workers: one mesh lab
// per worker count (benchmarks/lab/bench.yaml, `ferry lab up --workers N`), all up at
// once, measured in alternated runs (the worker counts' order rotated each run), so
// the machine's noise hits every count alike. Separate labs rather than restarting one
// lab's agents with another --workers: `ferry lab restart` keeps the plan's options, and
// three idle labs cost the machine nothing while they wait. Per run and count: the
// keep-alive load (after a 1 s warm-up) and the new-connection load of the suite on the
// ferry-cross path; both agents' CPU per request; node1's agent RSS before and at its
// peak; and node1's agent's CPU per thread over the keep-alive run, and how many cores
// its threads ran on at once in 100 ms windows (lib/threads.ts).

export const WORKER_COUNTS = [1, 2, 4] as const

export interface WorkersRun {
  /** --workers asked for. */
  readonly workers: number
  /** Workers node1's agent lists (/debug/workers). */
  readonly served: number
  readonly startedAt: string
  /** The host's 1-minute load average when the run started. */
  readonly loadAverage: number
  readonly keepalive: Measured
  readonly newconn: Measured
  /** Wall time of the keep-alive run, s (the span the threads' CPU is over). */
  readonly wallSeconds: number
  /** node1's agent's threads' CPU over the keep-alive run, busiest first (threads that used none left out). */
  readonly node1Threads: ThreadCpu[]
  /** How many cores node1's agent ran on at once during the keep-alive run (100 ms windows; absent in older results). */
  readonly node1Concurrency?: Concurrency
  readonly node1RssIdleBytes: number
  readonly node1RssPeakBytes: number
  readonly node2RssPeakBytes: number
}

export interface WorkersResult {
  readonly counts: readonly number[]
  /** Every run, in the order they ran. */
  readonly runs: WorkersRun[]
}

function crossPath (lab: Lab): BenchPath {
  return { id: 'ferry-cross', lab, url: (p) => `http://${lab.serviceIP('bench', 'server')}:${SERVER_PORT}${p}`, proxyPids: () => lab.agentPids() }
}

async function oneRun (ctx: Pick<Context, 'workDir' | 'opts' | 'log'>, lab: Lab, workers: number, served: number): Promise<WorkersRun> {
  const path = crossPath(lab)
  const node1 = lab.agentPid('node1')
  const node2 = lab.agentPid('node2')
  const startedAt = new Date().toISOString()
  const loadAverage = loadavg()[0]
  const node1RssIdleBytes = rssBytes(node1)
  await measureLoad(ctx, path, { connections: CONNECTIONS, seconds: 1 }, '/1k', `workers${workers}-warmup`)
  const rss1 = rssSampler([node1])
  const rss2 = rssSampler([node2])
  const before = threadSnapshot(node1)
  const sampler = threadSampler(node1)
  const cores = concurrencySampler(node1)
  let node1Concurrency: Concurrency = { windows: 0, peakCores: NaN, windowsOverOneCore: 0 }
  const t0 = performance.now()
  let samples: ThreadSnapshot[][] = []
  let node1RssPeakBytes = 0
  let node2RssPeakBytes = 0
  let keepalive: Measured
  try {
    keepalive = await measureLoad(ctx, path, keepaliveSpec(ctx.opts), '/1k', `workers${workers}-keepalive`)
  } finally {
    samples = sampler.stop()
    node1Concurrency = cores.stop()
    node1RssPeakBytes = rss1.stop()
    node2RssPeakBytes = rss2.stop()
  }
  const wallSeconds = (performance.now() - t0) / 1000
  const node1Threads = threadCpu(node1, before, threadSnapshot(node1), samples).filter((t) => t.cpuSeconds > 0)
  const newconn = await measureLoad(ctx, path, newconnSpec(ctx.opts), '/1k', `workers${workers}-newconn`)
  const top = node1Threads.slice(0, 2).map((t) => `${t.role} ${t.cpuSeconds.toFixed(2)} s`).join(', ')
  ctx.log(`workers ${workers}: ${keepalive.load.reqPerSec.toFixed(0)} req/s, ${(keepalive.proxyCpuUsPerRequest ?? NaN).toFixed(1)} µs/req, ${newconn.load.reqPerSec.toFixed(0)} conn/s; node1 busiest threads: ${top} of ${wallSeconds.toFixed(1)} s, at most ${node1Concurrency.peakCores.toFixed(2)} cores at once (${node1Concurrency.windowsOverOneCore} of ${node1Concurrency.windows} windows over one)`)
  return { workers, served, startedAt, loadAverage, keepalive, newconn, wallSeconds, node1Threads, node1Concurrency, node1RssIdleBytes, node1RssPeakBytes, node2RssPeakBytes }
}

export async function workers (ctx: Pick<Context, 'workDir' | 'opts' | 'log'>, manifest: string, labName: (workers: number) => string): Promise<WorkersResult> {
  const labs = new Map<number, Lab>()
  try {
    ctx.log(`workers: labs up with --workers ${WORKER_COUNTS.join(', ')}`)
    const up = await Promise.allSettled(WORKER_COUNTS.map(async (w) => await Lab.up(labName(w), manifest, { mesh: true, workers: w })))
    for (const [i, r] of up.entries()) {
      if (r.status === 'rejected') throw new Error(`workers ${WORKER_COUNTS[i]}: lab up failed: ${(r.reason as Error).message}`)
      labs.set(WORKER_COUNTS[i], r.value)
    }
    const served = new Map<number, number>()
    for (const [w, lab] of labs) {
      const r = await lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '5', crossPath(lab).url('/1k')], 15_000)
      if (r.code !== 0) throw new Error(`workers ${w}: the cross-node path does not answer (curl exit ${String(r.code)})`)
      served.set(w, await lab.workerCount('node1'))
    }
    const runs: WorkersRun[] = []
    for (let run = 0; run < ctx.opts.runs; run++) {
      for (const w of rotated(WORKER_COUNTS, run, ctx.opts.runs)) runs.push(await oneRun(ctx, labs.get(w) as Lab, w, served.get(w) as number))
    }
    return { counts: WORKER_COUNTS, runs }
  } finally {
    for (const w of WORKER_COUNTS) await Lab.down(labName(w))
  }
}
