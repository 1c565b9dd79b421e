import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Lab } from './lib/lab'
import { REPO } from './lib/exec'
import { CLIENT } from './lib/context'
import { measureAt, type Measured } from './cases/measure'

// `npm run bench:l7-quick [-- --seconds 6] [--runs 2] [--warm 6]`: a short, bounded look at the L7
// HTTP/1.1 keep-alive path, for before/after comparisons while working on it. One mesh
// lab (benchmarks/lab/bench-l7.yaml), no direct lab and no nginx peer; per run: Ferry L7
// cross-node and same-node, and Ferry L4 cross-node, each at saturation (16 connections)
// and at 1,000 req/s (20 connections), printing req/s, p50/p99 and both agents' CPU per
// request, after --warm 3 s warm-up windows per path (their cost printed). The full comparison (direct paths, nginx, gRPC) is `npm run bench -- --only l7`.

const HTTP_PORT = 8080

function line (id: string, what: string, m: Measured): string {
  const l = m.load
  return `${id.padEnd(15)} ${what.padEnd(10)} ${l.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${l.latency.p50Ms.toFixed(2).padStart(6)} ms  p99 ${l.latency.p99Ms.toFixed(2).padStart(6)} ms  ` +
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
  try {
    const lab = await Lab.up(name, join(REPO, 'benchmarks', 'lab', 'bench-l7.yaml'), { mesh: true })
    const svc = (s: string): string => `http://${lab.serviceIP('bench', s)}:${HTTP_PORT}/1k`
    const paths = [
      { id: 'ferry-l7-cross', lab, url: svc('server-l7'), proxyPids: () => lab.agentPids() },
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
    // A fresh agent's L7 path costs several times its steady CPU per request for its
    // first ~10-20 thousand requests (V8 warming up): each path is loaded first.
    for (const p of paths) {
      const costs: number[] = []
      for (let i = 0; i < warmWindows; i++) costs.push((await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds: 3 }, 'quick-warmup')).proxyCpuUsPerRequest ?? 0)
      process.stdout.write(`${p.id.padEnd(15)} warm-up    ${costs.map((c) => c.toFixed(0)).join(' → ')} µs/req\n`)
    }
    for (let run = 0; run < runs; run++) {
      for (const p of paths) {
        await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds: 1 }, 'quick-warmup')
        process.stdout.write(line(p.id, 'saturated', await measureAt({ workDir }, p, { url: p.url, connections: 16, seconds }, 'quick')) + '\n')
        process.stdout.write(line(p.id, '1000/s', await measureAt({ workDir }, p, { url: p.url, connections: 20, seconds, rpsPerConnection: 50 }, 'quick-rate')) + '\n')
      }
    }
  } finally {
    await Lab.down(name)
  }
}

main().catch((e) => { process.stderr.write(`l7-quick: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 1 })
