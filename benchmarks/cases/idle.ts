import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { type BenchPath, CLIENT, REPO_LAB_DIR, type Context } from '../lib/context'
import { sleep } from '../lib/exec'
import { rssSampler, totalRssBytes } from '../lib/proc'

// Many idle connections held open (lab/idle-holder.js in the client pod): the proxies'
// RSS before, and while they hold them, per connection; then many more (10,000) on the
// cross-node path, for the agents' memory per connection (outbound on node1, inbound on
// node2) against the DaemonSet's limit, and the same through the nginx stream peer.

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

/** Both agents while MANY connections are held on the cross-node path, and the L4 peer's processes for the same. */
export interface ManyConnectionsResult {
  readonly connections: number
  readonly open: number
  readonly failed: number
  readonly secondsToOpen: number
  readonly holdSeconds: number
  /** Node1's agent: the connections outbound (the client pod's sockets, tunnel streams to node2). */
  readonly node1: AgentMemory
  /** Node2's agent: the same inbound (tunnel streams from node1, sockets to the server pod). */
  readonly node2: AgentMemory
  /** The 1-minute load average of the machine when the connections were held (absent in older results). */
  readonly loadAverage?: number
  /** The same holder through the nginx stream peer (null without it; absent in older results). */
  readonly peer?: PeerManyConnections | null
}

export interface AgentMemory extends ProxyMemory {
  /** The node's tunnel buffer budget while the connections were held (/debug/tunnel; null if unread). */
  readonly tunnelBuffers: { readonly streams: number, readonly reservedBytes: number, readonly budgetBytes: number } | null
  /** … once they closed (streams and reservations back to 0; null if unread; absent in older results). */
  readonly tunnelBuffersAfter?: { readonly streams: number, readonly reservedBytes: number, readonly budgetBytes: number } | null
}

export interface ProxyMemory {
  readonly rssBeforeBytes: number
  readonly rssPeakBytes: number
  readonly rssAfterBytes: number
  /** (peak − before) ÷ connections held (absent in older results). */
  readonly bytesPerConnection?: number
}

export interface PeerManyConnections {
  readonly id: 'nginx-cross'
  readonly open: number
  readonly failed: number
  readonly secondsToOpen: number
  readonly node1: ProxyMemory
  readonly node2: ProxyMemory
}

const MANY_OPEN_DEADLINE_MS = 150_000
/** How long the agents get to return every stream and reservation after the holder exits. */
const RELEASE_DEADLINE_MS = 15_000

type Buffers = AgentMemory['tunnelBuffers']
const pick = (b: Buffers): Buffers => b === null ? null : { streams: b.streams, reservedBytes: b.reservedBytes, budgetBytes: b.budgetBytes }

/** lab/idle-holder.js with `count` connections to `url` from the client pod: each side's RSS before, at its peak, 3 s after. */
async function holdMany (ctx: Context, lab: BenchPath['lab'], url: string, count: number, pidsByNode: [number[], number[]], tag: string,
  whileHeld: () => Promise<void>): Promise<{ open: number, failed: number, secondsToOpen: number, memory: [Required<ProxyMemory>, Required<ProxyMemory>] }> {
  const ready = join(ctx.workDir, `idle-many-${tag}.json`)
  rmSync(ready, { force: true })
  const before = pidsByNode.map(totalRssBytes)
  const peaks = pidsByNode.map((pids) => rssSampler(pids))
  const started = Date.now()
  const killAfter = MANY_OPEN_DEADLINE_MS / 1000 + HOLD_SECONDS + 30
  const holder = lab.execPod(CLIENT.namespace, CLIENT.pod,
    ['timeout', '-s', 'KILL', String(killAfter), 'node', join(REPO_LAB_DIR, 'idle-holder.js'), url, String(count), String(HOLD_SECONDS), ready], (killAfter + 10) * 1000)
  let peak: number[] = []
  try {
    const deadline = Date.now() + MANY_OPEN_DEADLINE_MS
    while (!existsSync(ready) && Date.now() < deadline) await sleep(200)
    if (!existsSync(ready)) { await holder; throw new Error(`idle ${tag}: ${count} connections never all opened (or failed) in ${MANY_OPEN_DEADLINE_MS / 1000} s`) }
    await whileHeld()
  } finally {
    await holder
    peak = peaks.map((p) => p.stop())
  }
  const secondsToOpen = (statSync(ready).mtimeMs - started) / 1000
  const state = JSON.parse(readFileSync(ready, 'utf8')) as { open: number, failed: number }
  await sleep(3000)
  const after = pidsByNode.map(totalRssBytes)
  const memory = [0, 1].map((i) => ({ rssBeforeBytes: before[i], rssPeakBytes: peak[i], rssAfterBytes: after[i], bytesPerConnection: (peak[i] - before[i]) / Math.max(1, state.open) })) as [Required<ProxyMemory>, Required<ProxyMemory>]
  return { open: state.open, failed: state.failed, secondsToOpen, memory }
}

/**
 * `count` idle keep-alive connections (one request each, its answer awaited) held on
 * ferry-cross: node1's agent holds each in the client pod and as a tunnel stream, node2's
 * as a stream and a connection to nginx. Each agent's RSS before, at its peak while they
 * open and are held, and 3 s after they close; its tunnel buffers while held and once
 * closed; connections the path refused are counted. Then the same on nginx-cross (the L4
 * peer that can hold that many: HAProxy's maxconn and this host's fd limit stop it short),
 * for the memory per connection side by side.
 */
export async function manyConnections (ctx: Context, count: number): Promise<ManyConnectionsResult> {
  const path = ctx.paths.find((p) => p.id === 'ferry-cross')
  if (path === undefined) throw new Error('idle: no ferry-cross path')
  const buffers: Buffers[] = [null, null]
  let loadAverage = NaN
  const readBuffers = async (node: string): Promise<Buffers> => {
    try { return pick((await ctx.mesh.adminJson(node, '/debug/tunnel') as { buffers: NonNullable<Buffers> }).buffers) } catch { return null }
  }
  const ferry = await holdMany(ctx, path.lab, path.url('/1k'), count, [[ctx.mesh.agentPid('node1')], [ctx.mesh.agentPid('node2')]], 'ferry', async () => {
    loadAverage = loadavg()[0]
    buffers[0] = await readBuffers('node1')
    buffers[1] = await readBuffers('node2')
  })
  // Closed: every stream and reservation should be back (bounded wait).
  const after: Buffers[] = [null, null]
  const until = Date.now() + RELEASE_DEADLINE_MS
  for (const [i, node] of ['node1', 'node2'].entries()) {
    for (;;) {
      const b = await readBuffers(node)
      after[i] = b
      if ((b !== null && b.streams === 0 && b.reservedBytes === 0) || Date.now() >= until) break
      await sleep(250)
    }
  }
  const MiB = 2 ** 20
  const [m1, m2] = ferry.memory
  ctx.log(`idle ${count} on ferry-cross: ${ferry.open} open, ${ferry.failed} failed in ${ferry.secondsToOpen.toFixed(1)} s (load ${loadAverage.toFixed(1)}); node1 ${(m1.rssBeforeBytes / MiB).toFixed(1)} → ${(m1.rssPeakBytes / MiB).toFixed(1)} MiB (${(m1.bytesPerConnection / 1024).toFixed(1)} KiB/conn), node2 ${(m2.rssBeforeBytes / MiB).toFixed(1)} → ${(m2.rssPeakBytes / MiB).toFixed(1)} MiB (${(m2.bytesPerConnection / 1024).toFixed(1)} KiB/conn); after: ${JSON.stringify(after)}`)
  let peer: PeerManyConnections | null = null
  const nginx = ctx.paths.find((p) => p.id === 'nginx-cross')
  const byNode = ctx.nginxPeer?.pidsByNode
  if (nginx !== undefined && byNode !== undefined) {
    const r = await holdMany(ctx, nginx.lab, nginx.url('/1k'), count, [byNode.node1, byNode.node2], 'nginx', async () => {})
    peer = { id: 'nginx-cross', open: r.open, failed: r.failed, secondsToOpen: r.secondsToOpen, node1: r.memory[0], node2: r.memory[1] }
    ctx.log(`idle ${count} on nginx-cross: ${r.open} open, ${r.failed} failed; node1 ${(r.memory[0].bytesPerConnection / 1024).toFixed(1)} KiB/conn, node2 ${(r.memory[1].bytesPerConnection / 1024).toFixed(1)} KiB/conn`)
  }
  return {
    connections: count,
    open: ferry.open,
    failed: ferry.failed,
    secondsToOpen: ferry.secondsToOpen,
    holdSeconds: HOLD_SECONDS,
    loadAverage,
    node1: { ...m1, tunnelBuffers: buffers[0], tunnelBuffersAfter: after[0] },
    node2: { ...m2, tunnelBuffers: buffers[1], tunnelBuffersAfter: after[1] },
    peer
  }
}
