import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { h2load } from './lib/h2load'
import { Lab } from './lib/lab'
import { prepareWww } from './lib/www'
import { applyL7Route, ROUTED_SERVICE } from './lib/l7-route'
import { REPO, sleep } from './lib/exec'
import { CLIENT, SERVER_PORT } from './lib/context'
import { cgroup2Root } from './lib/cgroup'
import { hotFunctions, type CpuProfile } from './report/profile-summary'

// `npm run bench:profile [-- --seconds 10] [--path cross|same|routed] [--load keepalive|rate|bulk|newconn|flood] [--lab l4|l7] [--warmup SECONDS]`: the
// hot path under a CPU profiler (--lab l7: the L7 benchmark's lab, benchmarks/lab/bench-l7.yaml, and
// its L7 nginx Services `server-l7` / `local-l7`, so the per-request HTTP path is what runs;
// --path routed: its Service `server-routed` with its HTTPRoute, lab/bench-l7-route.yaml, applied by lib/l7-route.ts;
// --warmup: that long of the keep-alive load first, left out of the summary, which then
// counts only the samples of the measured load: a fresh agent's L7 path runs several
// times slower than its steady state for its first ~10-20 thousand requests). Brings up the mesh lab, replaces each node's agent with the same
// command line under `node --cpu-prof` (same cgroup and netns; pinned links keep
// capture in place, exactly like `lab restart`), runs the load through the path (1 KiB
// keep-alive at saturation; rate: 1 KiB keep-alive at 1,000 req/s over 20 connections, as the l7 case's fixed rate; bulk: one 1 GiB download; newconn: 1 KiB with a new connection per
// request, as the newconn benchmark; flood: 1 KiB at 1,000 req/s, as the flood benchmark, while
// its attackers flood node2:15008 with fresh SYNs), stops the agents (SIGTERM: the profile is
// written at exit) and prints the top functions by self time. Profiles land in results/profiles/.
//
// The lab passes no NODE_OPTIONS to its agents (src/lab/spawn.ts agentEnv keeps only
// FERRY_*, PATH, HOME, LANG, TZ), hence the replacement.

const OUT = join(REPO, 'benchmarks', 'results', 'profiles')
/** The newconn load: as many connections as the newconn benchmark, and requests per profiled second. */
const NEWCONN_CONNECTIONS = 8
const NEWCONN_PER_SECOND = 400
/** The flood load: the flood benchmark's fixed rate, and its `fresh` attackers (benchmarks/cases/flood.ts). */
const FLOOD_CONNECTIONS = 20
const FLOOD_RPS = 1000
const FLOOD_ATTACKER = { silent: 10_000, hellos: 2_500, connectTimeoutMs: 250 }

function argvOf (pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '')
}

function cgroupOf (pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')) ?? ''
  return join(cgroup2Root(), line.slice(3))
}

function netnsOf (lab: Lab, node: string): string { return lab.netnsPath(node) }

async function waitGone (pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    try { process.kill(pid, 0) } catch { return }
    await sleep(50)
  }
  process.kill(pid, 'SIGKILL')
}

/** Replaces a node's agent with the same argv under --cpu-prof; returns the new pid. */
async function profiledAgent (lab: Lab, node: string, dir: string): Promise<number> {
  const old = lab.agentPid(node)
  const argv = argvOf(old) // [node, bin/ferry.js, agent, …] — nsenter and sh exec'd into it
  const cgroup = cgroupOf(old)
  process.kill(old, 'SIGTERM')
  await waitGone(old, 10_000)
  // One directory per node and Node's default file names (CPU.<date>.<pid>.<tid>.<n>): the
  // worker threads inherit --cpu-prof and write a profile each.
  const profDir = join(dir, node)
  mkdirSync(profDir, { recursive: true })
  const log = openSync(join(dir, `${node}.log`), 'a')
  const child = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroup, 'cgroup.procs'),
    'nsenter', `--net=${netnsOf(lab, node)}`, '--', argv[0], '--cpu-prof', `--cpu-prof-dir=${profDir}`, ...argv.slice(1)],
  { cwd: REPO, detached: true, stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' } })
  closeSync(log)
  child.unref()
  if (child.pid === undefined) throw new Error(`cannot start the profiled agent on ${node}`)
  return child.pid
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, path: { type: 'string' }, load: { type: 'string' }, lab: { type: 'string' }, warmup: { type: 'string' } }, strict: true })
  const load = values.load ?? 'keepalive'
  if (!['keepalive', 'rate', 'bulk', 'newconn', 'flood'].includes(load)) throw new Error(`--load must be keepalive, rate, bulk, newconn or flood, got ${load}`)
  const bulk = load === 'bulk'
  const seconds = Math.min(60, Number(values.seconds ?? 10))
  const l7 = values.lab === 'l7'
  if (values.lab !== undefined && !['l4', 'l7'].includes(values.lab)) throw new Error(`--lab must be l4 or l7, got ${values.lab}`)
  if (values.path !== undefined && !['cross', 'same', 'routed'].includes(values.path)) throw new Error(`--path must be cross, same or routed, got ${values.path}`)
  const routed = values.path === 'routed'
  if (routed && !l7) throw new Error('--path routed needs --lab l7')
  const target = routed ? ROUTED_SERVICE : (values.path === 'same' ? 'local' : 'server') + (l7 ? '-l7' : '')
  mkdirSync(OUT, { recursive: true })
  for (const f of readdirSync(OUT).filter((x) => x.endsWith('.cpuprofile') || x === 'node1' || x === 'node2')) rmSync(join(OUT, f), { recursive: true })
  const name = `bp${process.pid}`
  let window: { fromUs: number, toUs: number } | null = null
  const pids: number[] = []
  const onSignal = (): void => {
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    void Lab.down(name).finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    await prepareWww()
    const lab = await Lab.up(name, join(REPO, 'benchmarks', 'lab', l7 ? 'bench-l7.yaml' : 'bench.yaml'), { mesh: true })
    for (const node of ['node1', 'node2']) pids.push(await profiledAgent(lab, node, OUT))
    const base = `http://${lab.serviceIP('bench', target)}:${SERVER_PORT}`
    const url = `${base}${bulk ? '/files/1g' : '/1k'}`
    // Ready once a request passes (the new agents re-enroll the pods first).
    for (let i = 0; i < 100; i++) {
      const r = await lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', `${base}/1k`], 10_000)
      if (r.code === 0) break
      await sleep(200)
    }
    if (routed) await applyL7Route(lab, join(OUT, 'node1.log'))
    const warmup = Math.min(120, Number(values.warmup ?? 0))
    if (warmup > 0) {
      const w = await h2load(lab, CLIENT, { url: `${base}/1k`, connections: 16, seconds: warmup }, OUT, 'profile-warmup')
      process.stderr.write(`profile: warm-up ${w.reqPerSec.toFixed(0)} req/s for ${warmup} s\n`)
    }
    const fromUs = Number(process.hrtime.bigint() / 1000n)
    if (bulk) {
      const r = await lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sS', '-o', '/dev/null', '--max-time', String(seconds), '-w', '%{speed_download}', url], (seconds + 15) * 1000)
      process.stderr.write(`profile: bulk ${(Number(r.stdout) / 1e6).toFixed(0)} MB/s under the profiler\n`)
    } else if (load === 'newconn') {
      // h2load does not reconnect in duration mode: a request count sized to last about
      // `seconds` at a few hundred connections/s, bounded by `seconds` + a margin.
      const r = await h2load(lab, CLIENT, { url, connections: NEWCONN_CONNECTIONS, seconds: seconds * 3, requests: seconds * NEWCONN_PER_SECOND, closeEachRequest: true }, OUT, 'profile')
      process.stderr.write(`profile: ${r.reqPerSec.toFixed(0)} new conn/s, p99 ${r.latency.p99Ms.toFixed(2)} ms under the profiler\n`)
    } else if (load === 'flood') {
      const attackers = [0, 1].map(async () => await lab.execUnderlay(['timeout', '-s', 'KILL', String(seconds + 30), process.execPath, join(REPO, 'test', 'fixtures', 'tunnel-flood.js'),
        lab.node('node2').ipv4, '15008', String(FLOOD_ATTACKER.silent), String(FLOOD_ATTACKER.hellos), String(seconds + 2), String(FLOOD_ATTACKER.connectTimeoutMs)], (seconds + 40) * 1000))
      const r = await h2load(lab, CLIENT, { url, connections: FLOOD_CONNECTIONS, seconds, rpsPerConnection: FLOOD_RPS / FLOOD_CONNECTIONS }, OUT, 'profile')
      for (const a of await Promise.all(attackers)) process.stderr.write(`profile: attacker ${a.stdout.trim()}\n`)
      process.stderr.write(`profile: ${r.reqPerSec.toFixed(0)} req/s, p99 ${r.latency.p99Ms.toFixed(2)} ms under the profiler and the flood\n`)
    } else if (load === 'rate') {
      const r = await h2load(lab, CLIENT, { url, connections: FLOOD_CONNECTIONS, seconds, rpsPerConnection: FLOOD_RPS / FLOOD_CONNECTIONS }, OUT, 'profile')
      process.stderr.write(`profile: ${r.reqPerSec.toFixed(0)} req/s, p50 ${r.latency.p50Ms.toFixed(2)} ms, p99 ${r.latency.p99Ms.toFixed(2)} ms under the profiler\n`)
    } else {
      const r = await h2load(lab, CLIENT, { url, connections: 16, seconds }, OUT, 'profile')
      process.stderr.write(`profile: ${r.reqPerSec.toFixed(0)} req/s, p50 ${r.latency.p50Ms.toFixed(2)} ms, p99 ${r.latency.p99Ms.toFixed(2)} ms under the profiler\n`)
    }
    window = { fromUs, toUs: Number(process.hrtime.bigint() / 1000n) }
    for (const pid of pids) { try { process.kill(pid, 'SIGTERM') } catch {} }
    for (const pid of pids) await waitGone(pid, 15_000)
  } finally {
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    await Lab.down(name)
  }
  const lines: string[] = []
  const files = ['node1', 'node2'].flatMap((node) => readdirSync(join(OUT, node)).filter((x) => x.endsWith('.cpuprofile')).map((x) => join(node, x)))
  for (const f of files) {
    const hot = hotFunctions(JSON.parse(readFileSync(join(OUT, f), 'utf8')) as CpuProfile, 30, window)
    lines.push(`## ${f}`, '', '| self ms | share | function |', '| --- | --- | --- |', ...hot.map((h) => `| ${h.selfMs.toFixed(0)} | ${(h.share * 100).toFixed(1)}% | ${h.name} |`), '')
  }
  writeFileSync(join(OUT, 'summary.md'), lines.join('\n'))
  process.stdout.write(lines.join('\n'))
}

main().catch((e) => { process.stderr.write(`profile: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 1 })
