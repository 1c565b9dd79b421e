import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Lab } from './lib/lab'
import { prepareWww } from './lib/www'
import { REPO } from './lib/exec'
import { CLIENT } from './lib/context'
import { applyL7Route, ROUTED_SERVICE } from './lib/l7-route'
import { describeMachine } from './lib/machine'
import { measureAt, type Measured } from './cases/measure'
import { medianByPath, rotated } from './report/alternated'
import { l7LoadTable, routeCostTable } from './report/l7'

// `npm run bench:l7-quick [-- --seconds 6] [--runs 2] [--warm 6]`: a short, bounded look at the L7
// HTTP/1.1 keep-alive path, for before/after comparisons while working on it. One mesh
// lab (benchmarks/lab/bench-l7.yaml), no direct lab and no nginx peer; per run: Ferry L7
// cross-node unrouted and routed (the Service server-routed with its HTTPRoute:
// benchmarks/lab/bench-l7-route.yaml), same-node, and Ferry L4 cross-node, each at
// saturation (16 connections) and at 1,000 req/s (20 connections), printing req/s,
// p50/p99 and both agents' CPU per request, after --warm 3 s warm-up windows per path
// (their cost printed); the paths' order rotated between runs. At the end, the medians
// over the runs and what a route costs (L4, L7, L7 routed as ratios), also written to
// results/l7-quick.{md,json}. The full comparison (direct paths, nginx, gRPC) is `npm run bench -- --only l7`.

const HTTP_PORT = 8080
const RATE = 1000
const RATE_CONNECTIONS = 20

interface QuickRun { readonly startedAt: string, readonly loadAverage: number, readonly order: string[], readonly saturated: Record<string, Measured>, readonly rate: Record<string, Measured> }

function line (id: string, what: string, m: Measured): string {
  const l = m.load
  return `${id.padEnd(22)} ${what.padEnd(10)} ${l.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${l.latency.p50Ms.toFixed(2).padStart(6)} ms  p99 ${l.latency.p99Ms.toFixed(2).padStart(6)} ms  ` +
    `${(m.proxyCpuUsPerRequest ?? NaN).toFixed(1).padStart(7)} µs/req  failed ${l.failed}`
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, runs: { type: 'string' }, warm: { type: 'string' } }, strict: true })
  const seconds = Math.min(30, Number(values.seconds ?? 6))
  const runs = Math.min(5, Number(values.runs ?? 2))
  const warmWindows = Math.min(20, Number(values.warm ?? 6))
  const name = `lq${process.pid}`
  const onSignal = (): void => { void Lab.down(name).finally(() => process.exit(130)) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const workDir = join(REPO, 'benchmarks', 'results', 'profiles')
  mkdirSync(workDir, { recursive: true })
  const startedAt = new Date().toISOString()
  try {
    await prepareWww()
    const lab = await Lab.up(name, join(REPO, 'benchmarks', 'lab', 'bench-l7.yaml'), { mesh: true })
    const svc = (s: string): string => `http://${lab.serviceIP('bench', s)}:${HTTP_PORT}/1k`
    const paths = [
      { id: 'ferry-l7-cross', lab, url: svc('server-l7'), proxyPids: () => lab.agentPids() },
      { id: 'ferry-l7-routed-cross', lab, url: svc(ROUTED_SERVICE), proxyPids: () => lab.agentPids() },
      { id: 'ferry-l7-same', lab, url: svc('local-l7'), proxyPids: () => lab.agentPids() },
      { id: 'ferry-l4-cross', lab, url: svc('server'), proxyPids: () => lab.agentPids() }
    ]
    for (const p of paths) {
      for (let i = 0; i < 50; i++) {
        const r = await lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', p.url], 10_000)
        if (r.code === 0) break
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    await applyL7Route(lab)
    // A fresh agent's L7 path costs several times its steady CPU per request for its
    // first ~10-20 thousand requests (V8 warming up): each path is loaded first.
    const warmUp: Record<string, number[]> = {}
    for (const p of paths) {
      const costs: number[] = warmUp[p.id] = []
      for (let i = 0; i < warmWindows; i++) costs.push((await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds: 3 }, 'quick-warmup')).proxyCpuUsPerRequest ?? 0)
      process.stdout.write(`${p.id.padEnd(22)} warm-up    ${costs.map((c) => c.toFixed(0)).join(' → ')} µs/req\n`)
    }
    const done: QuickRun[] = []
    for (let run = 0; run < runs; run++) {
      const order = rotated(paths, run, runs)
      const r: QuickRun = { startedAt: new Date().toISOString(), loadAverage: loadavg()[0], order: order.map((p) => p.id), saturated: {}, rate: {} }
      process.stdout.write(`run ${run + 1} of ${runs}, load average ${r.loadAverage.toFixed(2)}\n`)
      for (const p of order) {
        await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds: 1 }, 'quick-warmup')
        process.stdout.write(line(p.id, 'saturated', r.saturated[p.id] = await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds }, 'quick')) + '\n')
        process.stdout.write(line(p.id, `${RATE}/s`, r.rate[p.id] = await measureAt({ workDir }, p, { url: p.url, connections: RATE_CONNECTIONS, seconds, rpsPerConnection: RATE / RATE_CONNECTIONS }, 'quick-rate')) + '\n')
      }
      done.push(r)
    }
    const saturated = medianByPath(done.map((r) => r.saturated))
    const rate = medianByPath(done.map((r) => r.rate))
    const ids = paths.map((p) => p.id)
    const loads = done.map((r) => r.loadAverage.toFixed(2)).join(', ')
    const m = await describeMachine()
    // Each run's ratios (paths measured minutes apart at most), for a machine whose load moves between runs.
    const perRun = (what: string, of: (r: QuickRun) => Record<string, Measured>, figure: (m: Measured) => number | null, a: string, b: string): string =>
      `${what}: ` + done.map((r) => { const x = figure(of(r)[a]); const y = figure(of(r)[b]); return x === null || y === null || y === 0 ? '—' : `${(x / y).toFixed(2)}×` }).join(', ')
    const cpu = (m: Measured): number | null => m.proxyCpuUsPerRequest
    const reqs = (m: Measured): number | null => m.load.reqPerSec
    const md = [
      `# bench:l7-quick, ${startedAt} → ${new Date().toISOString()}`,
      '',
      `${runs} run(s) of ${seconds} s per load and path, ${warmWindows} warm-up windows of 3 s per path; load average at each run's start: ${loads} (1 min); ` +
        `commit ${m.gitCommit.slice(0, 12)}${m.gitDirty ? ' (with changes)' : ''}; ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}, h2load ${m.h2load}.`,
      '',
      'Warm-up (µs/request per window, both agents): ' + ids.map((id) => `${id} ${warmUp[id].map((c) => c.toFixed(0)).join(' → ')}`).join('; '),
      '',
      'HTTP/1.1 keep-alive, 1 KiB, at saturation (16 connections; medians over the runs):',
      '',
      l7LoadTable(saturated, ids),
      '',
      `At ${RATE} req/s (${RATE_CONNECTIONS} connections):`,
      '',
      l7LoadTable(rate, ids),
      '',
      'What a route costs (cross-node; L7 routed: the Service server-routed with benchmarks/lab/bench-l7-route.yaml), at saturation:',
      '',
      routeCostTable(saturated),
      '',
      `At ${RATE} req/s:`,
      '',
      routeCostTable(rate),
      '',
      'Per run (each run\'s own ratio):',
      '',
      `- ${perRun('CPU per request at saturation, routed ÷ L7', (r) => r.saturated, cpu, 'ferry-l7-routed-cross', 'ferry-l7-cross')}`,
      `- ${perRun('CPU per request at saturation, L7 ÷ L4', (r) => r.saturated, cpu, 'ferry-l7-cross', 'ferry-l4-cross')}`,
      `- ${perRun('CPU per request at saturation, routed ÷ L4', (r) => r.saturated, cpu, 'ferry-l7-routed-cross', 'ferry-l4-cross')}`,
      `- ${perRun('req/s at saturation, routed ÷ L7', (r) => r.saturated, reqs, 'ferry-l7-routed-cross', 'ferry-l7-cross')}`,
      `- ${perRun(`CPU per request at ${RATE} req/s, routed ÷ L7`, (r) => r.rate, cpu, 'ferry-l7-routed-cross', 'ferry-l7-cross')}`,
      ''
    ].join('\n')
    process.stdout.write('\n' + md)
    const out = join(REPO, 'benchmarks', 'results')
    writeFileSync(join(out, 'l7-quick.md'), md)
    writeFileSync(join(out, 'l7-quick.json'), JSON.stringify({ startedAt, machine: m, seconds, warmWindows, warmUp, runs: done, median: { saturated, rate } }, null, 2) + '\n')
  } finally {
    await Lab.down(name)
  }
}

main().catch((e) => { process.stderr.write(`l7-quick: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 1 })
