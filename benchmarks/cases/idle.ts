import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { CLIENT, REPO_LAB_DIR, type Context } from '../lib/context'
import { sleep } from '../lib/exec'
import { rssBytes, rssSampler, totalRssBytes } from '../lib/proc'

// Many idle connections held open (lab/idle-holder.js in the client pod): the proxies'
// RSS before, and while they hold them, per connection; then many more (10,000) on the
// cross-node path alone, for the agents' memory against the DaemonSet's limit.

export interface IdleResult {
  readonly connections: number
  readonly failed: number
  readonly rssBeforeBytes: number
  readonly rssHeldBytes: number
  readonly bytesPerConnection: number
}

const HOLD_SECONDS = 8

export async function idle (ctx: Context): Promise<Record<string, IdleResult>> {
  const count = ctx.opts.quick ? 300 : 1000
  const out: Record<string, IdleResult> = {}
  for (const path of ctx.paths) {
    const pids = path.proxyPids()
    if (pids.length === 0) continue
    const ready = join(ctx.workDir, `idle-${path.id}.json`)
    rmSync(ready, { force: true })
    const before = totalRssBytes(pids)
    const holder = path.lab.execPod(CLIENT.namespace, CLIENT.pod,
      ['timeout', '-s', 'KILL', '90', 'node', join(REPO_LAB_DIR, 'idle-holder.js'), path.url('/1k'), String(count), String(HOLD_SECONDS), ready], 100_000)
    const deadline = Date.now() + 60_000
    while (!existsSync(ready) && Date.now() < deadline) await sleep(100)
    if (!existsSync(ready)) { await holder; throw new Error(`idle ${path.id}: connections never all opened`) }
    await sleep(1000) // let the proxies settle (buffers allocated on the first request)
    const held = totalRssBytes(pids)
    const state = JSON.parse(readFileSync(ready, 'utf8')) as { open: number, failed: number }
    await holder
    out[path.id] = { connections: state.open, failed: state.failed, rssBeforeBytes: before, rssHeldBytes: held, bytesPerConnection: (held - before) / Math.max(1, state.open) }
    ctx.log(`idle ${path.id}: ${state.open} open, ${((held - before) / 1024 / Math.max(1, state.open)).toFixed(1)} KiB each`)
  }
  return out
}

/** Both agents while MANY connections are held on the cross-node path. */
export interface ManyConnectionsResult {
  readonly connections: number
  readonly open: number
  readonly failed: number
  readonly secondsToOpen: number
  readonly holdSeconds: number
  readonly node1: AgentMemory
  readonly node2: AgentMemory
}

export interface AgentMemory {
  readonly rssBeforeBytes: number
  readonly rssPeakBytes: number
  readonly rssAfterBytes: number
  /** The node's tunnel buffer budget while the connections were held (/debug/tunnel; null if unread). */
  readonly tunnelBuffers: { readonly streams: number, readonly reservedBytes: number, readonly budgetBytes: number } | null
}

const MANY_OPEN_DEADLINE_MS = 150_000

const pick = (b: AgentMemory['tunnelBuffers']): AgentMemory['tunnelBuffers'] => b === null ? null : { streams: b.streams, reservedBytes: b.reservedBytes, budgetBytes: b.budgetBytes }

/**
 * `count` idle keep-alive connections (one request each) held on ferry-cross: node1's
 * agent holds each in the client pod and as a tunnel stream, node2's as a stream and a
 * connection to nginx. Each agent's RSS before, at its peak while they open and are
 * held, and 3 s after they close; connections the path refused are counted.
 */
export async function manyConnections (ctx: Context, count: number): Promise<ManyConnectionsResult> {
  const path = ctx.paths.find((p) => p.id === 'ferry-cross')
  if (path === undefined) throw new Error('idle: no ferry-cross path')
  const [node1, node2] = [ctx.mesh.agentPid('node1'), ctx.mesh.agentPid('node2')]
  const ready = join(ctx.workDir, 'idle-many.json')
  rmSync(ready, { force: true })
  const before = [rssBytes(node1), rssBytes(node2)]
  const peaks = [rssSampler([node1]), rssSampler([node2])]
  const started = Date.now()
  const holdSeconds = HOLD_SECONDS
  const killAfter = MANY_OPEN_DEADLINE_MS / 1000 + holdSeconds + 30
  const holder = path.lab.execPod(CLIENT.namespace, CLIENT.pod,
    ['timeout', '-s', 'KILL', String(killAfter), 'node', join(REPO_LAB_DIR, 'idle-holder.js'), path.url('/1k'), String(count), String(holdSeconds), ready], (killAfter + 10) * 1000)
  let peak: number[] = []
  const buffers: Array<AgentMemory['tunnelBuffers']> = [null, null]
  try {
    const deadline = Date.now() + MANY_OPEN_DEADLINE_MS
    while (!existsSync(ready) && Date.now() < deadline) await sleep(200)
    if (!existsSync(ready)) { await holder; throw new Error(`idle: ${count} connections never all opened (or failed) in ${MANY_OPEN_DEADLINE_MS / 1000} s`) }
    for (const [i, node] of ['node1', 'node2'].entries()) {
      try { buffers[i] = (await ctx.mesh.adminJson(node, '/debug/tunnel') as { buffers: NonNullable<AgentMemory['tunnelBuffers']> }).buffers } catch {}
    }
  } finally {
    await holder
    peak = peaks.map((p) => p.stop())
  }
  const secondsToOpen = (statSync(ready).mtimeMs - started) / 1000
  const state = JSON.parse(readFileSync(ready, 'utf8')) as { open: number, failed: number }
  await sleep(3000)
  const after = [rssBytes(node1), rssBytes(node2)]
  const MiB = 2 ** 20
  ctx.log(`idle ${count} on ferry-cross: ${state.open} open, ${state.failed} failed in ${secondsToOpen.toFixed(1)} s; node1 ${(before[0] / MiB).toFixed(1)} → ${(peak[0] / MiB).toFixed(1)} MiB, node2 ${(before[1] / MiB).toFixed(1)} → ${(peak[1] / MiB).toFixed(1)} MiB`)
  return {
    connections: count,
    open: state.open,
    failed: state.failed,
    secondsToOpen,
    holdSeconds,
    node1: { rssBeforeBytes: before[0], rssPeakBytes: peak[0], rssAfterBytes: after[0], tunnelBuffers: pick(buffers[0]) },
    node2: { rssBeforeBytes: before[1], rssPeakBytes: peak[1], rssAfterBytes: after[1], tunnelBuffers: pick(buffers[1]) }
  }
}
