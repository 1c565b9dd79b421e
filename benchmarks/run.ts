import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { bulk } from './cases/bulk'
import { abortFlood, flood } from './cases/flood'
import { memory } from './cases/memory'
import { idle, manyConnections } from './cases/idle'
import { keepalive } from './cases/keepalive'
import { newconn } from './cases/newconn'
import { policy } from './cases/policy'
import { rates } from './cases/rate'
import { scale } from './cases/scale'
import { abortPods, manyPods } from './cases/pods'
import { parseWorkerCount } from '../src/agent/worker-count'
import { workers } from './cases/workers'
import { abortL7, l7 } from './cases/l7'
import { alternate } from './lib/alternate'
import { medianByPath, medianByRate } from './report/alternated'
import { buildPaths, CLIENT, type Context, type RunOptions } from './lib/context'
import { REPO } from './lib/exec'
import { startPeer } from './lib/haproxy'
import { NGINX_STREAM_MODULE, startNginxPeer } from './lib/nginx-peer'
import type { Peer } from './lib/peer'
import { Lab } from './lib/lab'
import { describeMachine } from './lib/machine'
import { prepareWww } from './lib/www'
import { totalRssBytes } from './lib/proc'
import { renderCharts, renderMarkdown } from './report/markdown'
import type { AlternatedRuns, Results } from './report/results'

// `npm run bench [-- --only keepalive,bulk] [--quick] [--runs N] [--workers N] [--pods 10,100,250] [--sockmap off]`
//
// Brings up two copies of benchmarks/lab/bench.yaml — one with Ferry, one --no-mesh
// (the direct path, and the HAProxy peer in its node namespaces) — runs every
// benchmark on every path, the ones with targets --runs times with the paths
// interleaved (lib/alternate.ts), then the benchmarks with labs of their own (workers,
// l7, scale, pods), and writes results/latest.{json,md} and results/*.svg. Labs, HAProxy
// and load generators are bounded in time and are taken down on every exit path (lab
// names are unique per run: b<role><pid>).

const BENCHMARKS = ['keepalive', 'rates', 'newconn', 'bulk', 'idle', 'idle10k', 'policy', 'flood', 'memory', 'workers', 'l7', 'scale', 'pods'] as const
/**
 * Not in the standard suite (run them with --only): the hostile loads take ~3 minutes
 * together and have their own alternated record (results/flood-runs.md).
 */
const OPT_IN: readonly BenchName[] = ['flood', 'memory']
/** The benchmarks with targets: run --runs times, the paths interleaved. */
const ALTERNATED: readonly BenchName[] = ['keepalive', 'rates', 'newconn', 'bulk']
/** The benchmarks that run in the suite's two labs (the others bring up their own). */
const IN_SUITE_LABS: readonly BenchName[] = ['keepalive', 'rates', 'newconn', 'bulk', 'idle', 'idle10k', 'policy', 'flood', 'memory']
type BenchName = typeof BENCHMARKS[number]

const RESULTS = join(REPO, 'benchmarks', 'results')
const MANIFEST = join(REPO, 'benchmarks', 'lab', 'bench.yaml')
/** The L7 benchmark's lab: its own, so that the L4 benchmarks' lab stays as it was. */
const L7_MANIFEST = join(REPO, 'benchmarks', 'lab', 'bench-l7.yaml')
/** A lab node's pod network is a /24: 253 pod addresses. */
const MAX_PODS_PER_NODE = 253
/** Pod counts of the `pods` harness (no lab, so no /24 limit). */
const HARNESS_POD_COUNTS = [10, 100, 1000]
/** Worker counts of the memory figures (`pods` harness; `scale` adds a lab of 100 pods with the others). */
const MEMORY_WORKERS = [1, 4]
const MAX_RUNS = 10
/** Idle connections held on the cross-node path by `idle10k` (3,000 with --quick). */
const MANY_CONNECTIONS = 10_000

function log (msg: string): void { process.stderr.write(`bench: ${msg}\n`) }

function parseOptions (): { only: BenchName[] | null, opts: RunOptions } {
  const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, runs: { type: 'string' }, workers: { type: 'string' }, pods: { type: 'string' }, sockmap: { type: 'string' } }, strict: true })
  let only: BenchName[] | null = null
  if (values.only !== undefined) {
    only = values.only.split(',').map((s) => s.trim()) as BenchName[]
    const unknown = only.filter((b) => !(BENCHMARKS as readonly string[]).includes(b))
    if (unknown.length > 0) throw new Error(`unknown benchmark(s) ${unknown.join(', ')} (known: ${BENCHMARKS.join(', ')})`)
  }
  const pods = (values.pods ?? '10,100,250').split(',').map(Number)
  if (pods.some((p) => !Number.isInteger(p) || p < 1 || p > MAX_PODS_PER_NODE)) throw new Error(`--pods: pod counts between 1 and ${MAX_PODS_PER_NODE} (the lab gives each node a /24)`)
  if (values.sockmap !== undefined && values.sockmap !== 'on' && values.sockmap !== 'off') throw new Error('--sockmap: on or off')
  const quick = values.quick === true
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) throw new Error(`--runs: an integer from 1 to ${MAX_RUNS}`)
  const workers = values.workers === undefined ? null : parseWorkerCount(values.workers, '--workers (the mesh lab\'s agents)')
  return { only, opts: { quick, podCounts: pods, sockmapOff: values.sockmap === 'off', runs, workers } }
}

async function main (): Promise<void> {
  const { only, opts } = parseOptions()
  const selected = (b: BenchName): boolean => only === null ? !OPT_IN.includes(b) : only.includes(b)
  const workDir = mkdtempSync(join(tmpdir(), 'ferry-bench-'))
  const results: Results = { machine: await describeMachine(), startedAt: new Date().toISOString(), quick: opts.quick, ...(opts.sockmapOff ? { sockmapOff: true } : {}), errors: {} }
  const runs: AlternatedRuns = { count: opts.runs }
  let peer: Peer | null = null
  let nginxPeer: Peer | null = null
  const cleanup = async (): Promise<void> => {
    await peer?.stop()
    await nginxPeer?.stop()
    peer = null
    nginxPeer = null
    for (const name of [...Lab.live]) await Lab.down(name)
    abortFlood()
    await abortL7()
    await abortPods()
  }
  const onSignal = (sig: string): void => { log(`${sig}: cleaning up`); void cleanup().finally(() => process.exit(130)) }
  process.once('SIGINT', () => onSignal('SIGINT'))
  process.once('SIGTERM', () => onSignal('SIGTERM'))
  const durations: Record<string, number> = {}
  results.durationsSeconds = durations
  const attempt = async <T>(name: BenchName, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!selected(name)) return undefined
    log(`— ${name} (${new Date().toISOString().slice(11, 19)})`)
    const started = performance.now()
    try { return await fn() } catch (e) {
      results.errors[name] = (e as Error).message.split('\n')[0]
      log(`${name} failed: ${(e as Error).stack ?? String(e)}`)
      return undefined
    } finally {
      durations[name] = Math.round((performance.now() - started) / 1000)
    }
  }
  try {
    if (selected('workers') || selected('l7') || IN_SUITE_LABS.some(selected)) await prepareWww()
    if (IN_SUITE_LABS.some(selected)) {
      log('labs up (mesh and no-mesh)')
      const [mesh, direct] = await Promise.all([Lab.up(`bm${process.pid}`, MANIFEST, { mesh: true, sockmapOff: opts.sockmapOff, ...(opts.workers === null ? {} : { workers: opts.workers }) }), Lab.up(`bd${process.pid}`, MANIFEST, { mesh: false })])
      results.meshWorkers = await mesh.workerCount('node1')
      const target = { namespace: 'bench', pod: 'server', port: 8080 }
      peer = await startPeer(direct, workDir, results.machine.cores, target)
      if (existsSync(NGINX_STREAM_MODULE)) nginxPeer = await startNginxPeer(direct, workDir, results.machine.cores, target)
      else log(`no nginx stream peer: ${NGINX_STREAM_MODULE} is not installed (Debian libnginx-mod-stream)`)
      const ctx: Context = { direct, mesh, peer, nginxPeer, paths: buildPaths(direct, mesh, peer, nginxPeer), workDir, opts, log }
      results.idleRss = Object.fromEntries(ctx.paths.filter((p) => p.proxyPids().length > 0).map((p) => [p.id, totalRssBytes(p.proxyPids())]))
      // Every path answers before anything is measured.
      for (const p of ctx.paths) {
        const r = await p.lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '5', p.url('/1k')], 15_000)
        if (r.code !== 0) throw new Error(`path ${p.id} does not answer (${p.url('/1k')}): curl exit ${String(r.code)}`)
      }
      // Idle first: the proxies' RSS has not yet grown with load, so the per-connection delta is clean.
      results.idle = await attempt('idle', async () => await idle(ctx))
      // The benchmarks with targets: every run kept in `runs`, the medians at the top level.
      if (ALTERNATED.some(selected)) results.runs = runs
      if (selected('keepalive')) runs.keepalive = []
      if (selected('rates')) runs.rates = []
      if (selected('newconn')) runs.newconn = []
      if (selected('bulk')) runs.bulk = []
      await attempt('keepalive', async () => { await alternate(ctx, 'keepalive', runs.keepalive ?? [], keepalive) })
      await attempt('rates', async () => { await alternate(ctx, 'rates', runs.rates ?? [], rates) })
      await attempt('newconn', async () => { await alternate(ctx, 'newconn', runs.newconn ?? [], newconn) })
      await attempt('bulk', async () => { await alternate(ctx, 'bulk', runs.bulk ?? [], bulk) })
      if (runs.keepalive !== undefined && runs.keepalive.length > 0) results.keepalive = medianByPath(runs.keepalive.map((x) => x.figures))
      if (runs.rates !== undefined && runs.rates.length > 0) results.rates = medianByRate(runs.rates.map((x) => x.figures))
      if (runs.newconn !== undefined && runs.newconn.length > 0) results.newconn = medianByPath(runs.newconn.map((x) => x.figures))
      if (runs.bulk !== undefined && runs.bulk.length > 0) results.bulk = medianByPath(runs.bulk.map((x) => x.figures))
      // After the loads: the agents' memory here includes what they grew carrying them.
      results.manyConnections = await attempt('idle10k', async () => await manyConnections(ctx, opts.quick ? 3000 : MANY_CONNECTIONS))
      results.policy = await attempt('policy', async () => await policy(ctx))
      results.flood = await attempt('flood', async () => await flood(ctx))
      results.memory = await attempt('memory', async () => await memory(ctx))
      await cleanup()
    }
    const ownLabsCtx = { opts, log, workDir }
    results.workers = await attempt('workers', async () => await workers(ownLabsCtx, MANIFEST, (w) => `bw${w}-${process.pid}`.slice(0, 15)))
    results.l7 = await attempt('l7', async () => await l7(ownLabsCtx, L7_MANIFEST, (role) => `bl${role}${process.pid}`.slice(0, 15), results.machine.cores))
    results.scale = await attempt('scale', async () => await scale(ownLabsCtx, (tag) => `bs${tag}-${process.pid}`.slice(0, 15), MEMORY_WORKERS.filter((w) => w !== 1)))
    results.pods = await attempt('pods', async () => await manyPods(ownLabsCtx, HARNESS_POD_COUNTS, MEMORY_WORKERS))
  } finally {
    await cleanup()
    rmSync(workDir, { recursive: true, force: true })
  }
  results.finishedAt = new Date().toISOString()
  writeOutputs(results, only, opts.sockmapOff)
}

function writeOutputs (results: Results, only: BenchName[] | null, sockmapOff: boolean): void {
  mkdirSync(RESULTS, { recursive: true })
  const base = (only === null ? (sockmapOff ? 'all' : 'latest') : `only-${only.join('-')}`) + (sockmapOff ? '-sockmap-off' : '')
  writeFileSync(join(RESULTS, `${base}.json`), JSON.stringify(results, null, 1) + '\n')
  const md = renderMarkdown(results)
  writeFileSync(join(RESULTS, `${base}.md`), md)
  // Every full suite is also kept under its start time: the run in the README is one of them, not the best.
  if (only === null) {
    const history = join(RESULTS, 'history')
    mkdirSync(history, { recursive: true })
    const stamp = results.startedAt.replace(/[:.]/g, '-')
    writeFileSync(join(history, `${stamp}${sockmapOff ? '-sockmap-off' : ''}.json`), JSON.stringify(results, null, 1) + '\n')
    writeFileSync(join(history, `${stamp}${sockmapOff ? '-sockmap-off' : ''}.md`), md)
  }
  const chartDir = base === 'latest' ? RESULTS : join(RESULTS, base)
  mkdirSync(chartDir, { recursive: true })
  for (const [file, svg] of Object.entries(renderCharts(results))) writeFileSync(join(chartDir, file), svg)
  process.stdout.write(md)
  log(`wrote ${join(RESULTS, base)}.{json,md} and charts in ${chartDir}`)
}

main().catch((e) => {
  log(`failed: ${(e as Error).stack ?? String(e)}`)
  process.exitCode = 1
})
