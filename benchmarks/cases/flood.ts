import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Context } from '../lib/context'
import { type ExecResult, REPO } from '../lib/exec'
import { rssBytes } from '../lib/proc'
import { measureLoad, type Measured } from './measure'

// Cross-node latency while node2's tunnel port is flooded: the same fixed-rate run on
// the ferry-cross path (1 KiB, keep-alive, 1,000 req/s on 20 connections) twice — quiet,
// then while two processes in the underlay (an address that is no node) hold 20,000
// silent connections to node2:15008 and loop TLS ClientHellos with random SNIs
// (test/fixtures/tunnel-flood.js, the e2e test's attacker). Target: p99 under flood at
// most 2× the quiet p99. The attacker runs on the same two cores as both agents, h2load
// and nginx, so the figure includes its CPU competing with theirs; a control run aims the
// same attack at a closed port of node2 (the kernel answers RST, the agent never sees it)
// to show how much of the difference is the attacker's own CPU.

export interface FloodResult {
  readonly quiet: Measured
  readonly flooded: Measured
  /** The same attack on a closed port of node2 (the agent not involved). */
  readonly control: Measured
  /** p99 under flood / quiet p99. */
  readonly p99Ratio: number
  /** p99 under the control attack / quiet p99. */
  readonly controlP99Ratio: number
  /** What the attackers did (summed over both processes). */
  readonly attack: Record<string, number>
  /** node2's agent during the flood: peak open fds and RSS. */
  readonly node2PeakFds: number
  readonly node2PeakRssBytes: number
}

const SILENT = 20_000
const HELLOS = 5_000
const RATE = 1000
const CONNECTIONS = 20

export async function flood (ctx: Context): Promise<FloodResult> {
  const path = ctx.paths.find((p) => p.id === 'ferry-cross')
  if (path === undefined) throw new Error('flood: no ferry-cross path')
  const seconds = ctx.opts.quick ? 4 : 8
  const spec = { connections: CONNECTIONS, seconds, rpsPerConnection: RATE / CONNECTIONS }
  await measureLoad(ctx, path, { connections: CONNECTIONS, seconds: 1 }, '/1k', 'flood-warmup')
  const quiet = await measureLoad(ctx, path, spec, '/1k', 'flood-quiet')

  const lab = ctx.mesh
  const node2 = lab.agentPid('node2')
  const target = lab.node('node2').ipv4
  const attackSeconds = seconds + 8
  const attack = (port: number): Array<Promise<ExecResult>> => [0, 1].map(async () => await lab.execUnderlay(['timeout', '-s', 'KILL', String(attackSeconds + 30), process.execPath,
    join(REPO, 'test', 'fixtures', 'tunnel-flood.js'), target, String(port), String(SILENT / 2), String(HELLOS / 2), String(attackSeconds)], (attackSeconds + 40) * 1000))
  const control = (await underAttack(ctx, attack(CLOSED_PORT), async () => await measureLoad(ctx, path, spec, '/1k', 'flood-control'))).measured
  let peakFds = 0
  let peakRss = 0
  const sampler = setInterval(() => {
    try {
      peakFds = Math.max(peakFds, readdirSync(`/proc/${node2}/fd`).length)
      peakRss = Math.max(peakRss, rssBytes(node2))
    } catch {}
  }, 100)
  const { measured: flooded, attackers } = await underAttack(ctx, attack(15008), async () => await measureLoad(ctx, path, spec, '/1k', 'flood-under'))
  clearInterval(sampler)
  const stats: Record<string, number> = {}
  for (const r of attackers) {
    try {
      for (const [k, v] of Object.entries(JSON.parse(r.stdout) as Record<string, number>)) stats[k] = (stats[k] ?? 0) + v
    } catch {}
  }
  const p99Ratio = flooded.load.latency.p99Ms / quiet.load.latency.p99Ms
  const controlP99Ratio = control.load.latency.p99Ms / quiet.load.latency.p99Ms
  ctx.log(`flood: p99 quiet ${quiet.load.latency.p99Ms.toFixed(2)} ms, under flood ${flooded.load.latency.p99Ms.toFixed(2)} ms (${p99Ratio.toFixed(2)}×), same attack on a closed port ${control.load.latency.p99Ms.toFixed(2)} ms (${controlP99Ratio.toFixed(2)}×); attack ${JSON.stringify(stats)}; node2 peak ${peakFds} fds, ${(peakRss / 2 ** 20).toFixed(1)} MiB`)
  return { quiet, flooded, control, p99Ratio, controlP99Ratio, attack: stats, node2PeakFds: peakFds, node2PeakRssBytes: peakRss }
}

/** A port of node2 nothing listens on: the kernel resets every connection. */
const CLOSED_PORT = 15999

/** Runs `measure` 3 s into an attack (once its first 20,000 connections are made) and waits for the attackers too. */
async function underAttack (ctx: Context, attackers: Array<Promise<ExecResult>>, measure: () => Promise<Measured>): Promise<{ measured: Measured, attackers: ExecResult[] }> {
  const measured = new Promise((resolve) => setTimeout(resolve, 3000)).then(measure)
  const [outcome, done] = await Promise.all([measured.then((m) => ({ m }), (err: unknown) => ({ err })), Promise.all(attackers)])
  for (const r of done) if (r.code !== 0) ctx.log(`flood attacker exited ${String(r.code)}: ${r.stderr.slice(-300)}`)
  if ('err' in outcome) throw outcome.err
  return { measured: outcome.m, attackers: done }
}
