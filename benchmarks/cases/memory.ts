import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Context } from '../lib/context'
import { REPO } from '../lib/exec'
import { LAB_STATE_DIR } from '../lib/lab'
import { rssBytes } from '../lib/proc'

// node2's agent memory under the tunnel's buffer budget: a verified peer in node1's
// namespace (lab/hostile-peer.js: a genuine SVID of bench/client from the lab's CA, with
// node1's token) opens 14 sessions of 100 CONNECT streams each to bench/sink — a
// pod that never reads — and writes into every stream as fast as node2 lets it, reading
// nothing. node2's agent then holds what the budget allows (256 MiB node-wide in the
// lab, whose agents have no memory limit; 40 % of the limit under one). Figures: node2's agent RSS before, at its peak and after; the tunnel's
// reserved and held bytes at the peak (/debug/tunnel); compared with the DaemonSet's
// 512 MiB limit.

export interface MemoryResult {
  readonly peer: Record<string, number>
  readonly rssBeforeBytes: number
  readonly rssPeakBytes: number
  readonly rssAfterBytes: number
  readonly reservedBytes: number
  readonly heldBytes: number
  readonly budgetBytes: number
}

/** 1,400 streams: more than the default budget holds at the smallest window (~1,300). */
const SESSIONS = 14
const STREAMS = 100
const PER_STREAM_MIB = 8

export async function memory (ctx: Context): Promise<MemoryResult> {
  const lab = ctx.mesh
  const state = JSON.parse(readFileSync(join(LAB_STATE_DIR, lab.name, 'state.json'), 'utf8'))
  const node1 = state.plan.nodes.find((n: { name: string }) => n.name === 'node1')
  const ca = state.plan.controller
  const node2 = lab.agentPid('node2')
  const sink = lab.pod('bench', 'sink')
  // Long enough for the kernel's socket buffers between node2 and the sink (≈ 1.3 MB a
  // stream) to fill, so that the bytes pile up in the agent itself.
  const hold = ctx.opts.quick ? 8 : 45
  const before = rssBytes(node2)
  let peak = before
  let atPeak = { reserved: 0, held: 0, budget: 0 }
  const sampler = setInterval(() => { try { peak = Math.max(peak, rssBytes(node2)) } catch {} }, 100)
  const peer = lab.execNode('node1', ['timeout', '-s', 'KILL', String(hold + 30), process.execPath, join(REPO, 'benchmarks', 'lab', 'hostile-peer.js'), join(REPO, 'dist'),
    lab.node('node2').ipv4, 'spiffe://cluster.local/ns/bench/sa/sink', `${sink.ipv4}:8080`, ca.rootCert, 'spiffe://cluster.local/ns/bench/sa/client',
    `${ca.address as string}:${ca.port as number}`, node1.caTokenFile, String(SESSIONS), String(STREAMS), String(PER_STREAM_MIB), String(hold)], (hold + 40) * 1000)
  // Read the tunnel's gauges while the peer holds (a few seconds in, once the windows have settled).
  for (let i = 0; i < hold - 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    try {
      const b = (await lab.adminJson('node2', '/debug/tunnel') as { buffers: { reservedBytes: number, heldBytes: number, budgetBytes: number } }).buffers
      if (b.heldBytes >= atPeak.held) atPeak = { reserved: b.reservedBytes, held: b.heldBytes, budget: b.budgetBytes }
    } catch {}
  }
  const done = await peer
  clearInterval(sampler)
  if (done.code !== 0) throw new Error(`memory: the hostile peer exited ${String(done.code)}: ${done.stdout.slice(-300)} ${done.stderr.slice(-300)}`)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const result: MemoryResult = {
    peer: JSON.parse(done.stdout) as Record<string, number>,
    rssBeforeBytes: before,
    rssPeakBytes: peak,
    rssAfterBytes: rssBytes(node2),
    reservedBytes: atPeak.reserved,
    heldBytes: atPeak.held,
    budgetBytes: atPeak.budget
  }
  const MiB = 2 ** 20
  ctx.log(`memory: peer ${JSON.stringify(result.peer)}; node2 RSS ${(before / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} → ${(result.rssAfterBytes / MiB).toFixed(1)} MiB; reserved ${(result.reservedBytes / MiB).toFixed(1)}, held ${(result.heldBytes / MiB).toFixed(1)} of ${(result.budgetBytes / MiB).toFixed(0)} MiB`)
  return result
}
