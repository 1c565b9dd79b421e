import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Context } from '../lib/context'
import { type CpuCappedCgroup, cpuCappedCgroup } from '../lib/cgroup'
import { type ExecResult, REPO } from '../lib/exec'
import type { Lab } from '../lib/lab'
import { cpuSeconds, rssBytes } from '../lib/proc'
import { measureLoad, type Measured } from './measure'

// Cross-node latency while node2's tunnel port is flooded: the same fixed-rate run on
// the ferry-cross path (1 KiB, keep-alive, 1,000 req/s on 20 connections), quiet, then
// under attack: two processes in the underlay (an address that is no node) hold 20,000
// silent connections to node2:15008 and loop TLS ClientHellos with random SNIs
// (test/fixtures/tunnel-flood.js, the e2e test's attacker). Target: p99 under flood at
// most 2× the quiet p99.
//
// The attacker runs on the same two cores as both agents, h2load and nginx, so every
// figure includes its CPU competing with theirs. Hence the variants, each measured the
// same way:
//
//   flood         the attack as it always was (`p99Ratio`, the target's figure). Against
//                 the kernel's SYN rate its connects go unanswered and wait for their
//                 SYN retransmissions, so it makes fewer attempts than against a port
//                 that answers
//   fresh         the same attacker giving up on a connect after 250 ms and opening
//                 another: fresh SYNs at its full reopen rate all along
//   control       the attack on a closed port of node2 (the kernel answers RST, the agent
//                 never sees it): what the attacker's own CPU costs the path
//   fresh-capped,   fresh and control with both attackers in one cgroup capped at a quarter
//   control-capped  of a CPU: a remote attacker's CPU is not the node's, and the cap keeps
//                   most of theirs off the two shared cores. It also slows the attack
//                   (compare its attempts); the kernel's receive work for their packets is
//                   still done here, partly inside the cap (on veth, the receiver's softirq
//                   mostly runs in the sender's context). SCHED_IDLE attackers were tried
//                   first and made p99 worse, not better, in both trees (benchmarks/README.md)
//
// For each: p99 and its ratio to quiet, node2's agent CPU during the measured window, what
// node2's kernel did with the SYNs (ferry_tunnel_kernel_syns_total) and what the attack did.

export type FloodVariantId = 'flood' | 'fresh' | 'control' | 'fresh-capped' | 'control-capped'

export interface FloodVariant {
  readonly measured: Measured
  /** p99 under this attack / quiet p99. */
  readonly p99Ratio: number
  /** What the attackers did (summed over both processes). */
  readonly attack: Record<string, number>
  /** node2's agent CPU seconds during the measured window. */
  readonly node2CpuSeconds: number
  /** SYNs node2's kernel admitted and dropped during the attack (null: no kernel admission). */
  readonly kernelSyns: { readonly admitted: number, readonly dropped: number } | null
}

export interface FloodResult {
  readonly quiet: Measured
  /** node2's agent CPU seconds during the quiet window. */
  readonly quietNode2CpuSeconds: number
  /** The unchanged attack on node2:15008 (also in `variants.flood`). */
  readonly flooded: Measured
  /** The same attack on a closed port of node2 (the agent not involved). */
  readonly control: Measured
  /** p99 under flood / quiet p99. */
  readonly p99Ratio: number
  /** p99 under the control attack / quiet p99. */
  readonly controlP99Ratio: number
  /** What the unchanged attack did (summed over both processes). */
  readonly attack: Record<string, number>
  readonly variants: Partial<Record<FloodVariantId, FloodVariant>>
  /** node2's agent during the attacks on 15008: peak open fds and RSS. */
  readonly node2PeakFds: number
  readonly node2PeakRssBytes: number
}

const SILENT = 20_000
const HELLOS = 5_000
const RATE = 1000
const CONNECTIONS = 20
/** The `fresh` attackers give up on an unanswered connect after this. */
const FRESH_CONNECT_TIMEOUT_MS = 250
/** The `-capped` attackers' CPU, both together. */
const ATTACKER_CPUS = 0.25
/** A port of node2 nothing listens on: the kernel resets every connection. */
const CLOSED_PORT = 15999

interface VariantSpec { readonly id: FloodVariantId, readonly port: number, readonly connectTimeoutMs: number | null, readonly capped: boolean }

const VARIANTS: readonly VariantSpec[] = [
  { id: 'control', port: CLOSED_PORT, connectTimeoutMs: null, capped: false },
  { id: 'flood', port: 15008, connectTimeoutMs: null, capped: false },
  { id: 'fresh', port: 15008, connectTimeoutMs: FRESH_CONNECT_TIMEOUT_MS, capped: false },
  { id: 'control-capped', port: CLOSED_PORT, connectTimeoutMs: null, capped: true },
  { id: 'fresh-capped', port: 15008, connectTimeoutMs: FRESH_CONNECT_TIMEOUT_MS, capped: true }
]

/** The attackers' capped cgroup while a `-capped` variant runs (removed by abortFlood on a signal). */
let liveCap: CpuCappedCgroup | null = null

/** Removes what a flood run interrupted by a signal left behind (its attackers die with the signal). */
export function abortFlood (): void {
  liveCap?.remove()
  liveCap = null
}

export async function flood (ctx: Context): Promise<FloodResult> {
  const path = ctx.paths.find((p) => p.id === 'ferry-cross')
  if (path === undefined) throw new Error('flood: no ferry-cross path')
  const seconds = ctx.opts.quick ? 4 : 8
  const spec = { connections: CONNECTIONS, seconds, rpsPerConnection: RATE / CONNECTIONS }
  const lab = ctx.mesh
  const node2 = lab.agentPid('node2')
  const target = lab.node('node2').ipv4
  const attackSeconds = seconds + 8
  await measureLoad(ctx, path, { connections: CONNECTIONS, seconds: 1 }, '/1k', 'flood-warmup')
  const quietCpu0 = cpuSeconds(node2)
  const quiet = await measureLoad(ctx, path, spec, '/1k', 'flood-quiet')
  const quietNode2CpuSeconds = cpuSeconds(node2) - quietCpu0

  const attackers = (v: VariantSpec, procsFile: string | null): Array<Promise<ExecResult>> => [0, 1].map(async () => await lab.execUnderlay([
    ...(procsFile === null ? [] : ['sh', '-c', 'echo $$ > "$0" && exec "$@"', procsFile]),
    'timeout', '-s', 'KILL', String(attackSeconds + 30), process.execPath, join(REPO, 'test', 'fixtures', 'tunnel-flood.js'),
    target, String(v.port), String(SILENT / 2), String(HELLOS / 2), String(attackSeconds), ...(v.connectTimeoutMs === null ? [] : [String(v.connectTimeoutMs)])
  ], (attackSeconds + 40) * 1000))

  let peakFds = 0
  let peakRss = 0
  const variants: Partial<Record<FloodVariantId, FloodVariant>> = {}
  for (const v of VARIANTS) {
    const syn0 = await kernelSyns(lab)
    const sampler = v.port === CLOSED_PORT
      ? null
      : setInterval(() => {
        try {
          peakFds = Math.max(peakFds, readdirSync(`/proc/${node2}/fd`).length)
          peakRss = Math.max(peakRss, rssBytes(node2))
        } catch {}
      }, 100)
    let cpu = 0
    const cap = v.capped ? cpuCappedCgroup(`ferry-bench-${process.pid}-attackers`, ATTACKER_CPUS) : null
    liveCap = cap
    let run: { measured: Measured, done: ExecResult[] }
    try {
      run = await underAttack(ctx, attackers(v, cap?.procsFile ?? null), async () => {
        const cpu0 = cpuSeconds(node2)
        const m = await measureLoad(ctx, path, spec, '/1k', `flood-${v.id}`)
        cpu = cpuSeconds(node2) - cpu0
        return m
      })
    } finally {
      if (sampler !== null) clearInterval(sampler)
      cap?.remove()
      liveCap = null
    }
    const { measured, done } = run
    const syn1 = await kernelSyns(lab)
    const variant: FloodVariant = {
      measured,
      p99Ratio: measured.load.latency.p99Ms / quiet.load.latency.p99Ms,
      attack: sumStats(done),
      node2CpuSeconds: cpu,
      kernelSyns: syn0 === null || syn1 === null ? null : { admitted: syn1.admitted - syn0.admitted, dropped: syn1.dropped - syn0.dropped }
    }
    variants[v.id] = variant
    ctx.log(`flood: ${v.id}: p99 ${measured.load.latency.p99Ms.toFixed(2)} ms (${variant.p99Ratio.toFixed(2)}× quiet ${quiet.load.latency.p99Ms.toFixed(2)} ms); node2 agent CPU ${(cpu * 1000).toFixed(0)} ms (quiet ${(quietNode2CpuSeconds * 1000).toFixed(0)} ms); kernel SYNs ${JSON.stringify(variant.kernelSyns)}; attack ${JSON.stringify(variant.attack)}`)
  }
  const flooded = variants.flood as FloodVariant
  const control = variants.control as FloodVariant
  ctx.log(`flood: p99 quiet ${quiet.load.latency.p99Ms.toFixed(2)} ms, under flood ${flooded.measured.load.latency.p99Ms.toFixed(2)} ms (${flooded.p99Ratio.toFixed(2)}×), same attack on a closed port ${control.measured.load.latency.p99Ms.toFixed(2)} ms (${control.p99Ratio.toFixed(2)}×); node2 peak ${peakFds} fds, ${(peakRss / 2 ** 20).toFixed(1)} MiB`)
  return {
    quiet,
    quietNode2CpuSeconds,
    flooded: flooded.measured,
    control: control.measured,
    p99Ratio: flooded.p99Ratio,
    controlP99Ratio: control.p99Ratio,
    attack: flooded.attack,
    variants,
    node2PeakFds: peakFds,
    node2PeakRssBytes: peakRss
  }
}

/** Runs `measure` 3 s into an attack (once its first 20,000 connections are made) and waits for the attackers too. */
async function underAttack (ctx: Context, attackers: Array<Promise<ExecResult>>, measure: () => Promise<Measured>): Promise<{ measured: Measured, done: ExecResult[] }> {
  const measured = new Promise((resolve) => setTimeout(resolve, 3000)).then(measure)
  const [outcome, done] = await Promise.all([measured.then((m) => ({ m }), (err: unknown) => ({ err })), Promise.all(attackers)])
  for (const r of done) if (r.code !== 0) ctx.log(`flood attacker exited ${String(r.code)}: ${r.stderr.slice(-300)}`)
  if ('err' in outcome) throw outcome.err
  return { measured: outcome.m, done }
}

function sumStats (done: readonly ExecResult[]): Record<string, number> {
  const stats: Record<string, number> = {}
  for (const r of done) {
    try {
      for (const [k, v] of Object.entries(JSON.parse(r.stdout) as Record<string, number>)) stats[k] = (stats[k] ?? 0) + v
    } catch {}
  }
  return stats
}

/** node2's ferry_tunnel_kernel_syns_total, from its /metrics; null when it has none (no kernel admission). */
async function kernelSyns (lab: Lab): Promise<{ admitted: number, dropped: number } | null> {
  const r = await lab.execNode('node2', ['curl', '-sf', 'http://127.0.0.1:15020/metrics'], 10_000)
  const value = (result: string): number | null => {
    const m = new RegExp(`^ferry_tunnel_kernel_syns_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(r.stdout)
    return m === null ? null : Number(m[1])
  }
  const admitted = value('admitted')
  const dropped = value('dropped')
  return admitted === null || dropped === null ? null : { admitted, dropped }
}
