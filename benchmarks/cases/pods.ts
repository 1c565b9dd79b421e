import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, rmdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { HEAP } from '../../src/config/env'
import type { Context } from '../lib/context'
import { exec, FERRY, REPO, sleep } from '../lib/exec'
import { rssBytes } from '../lib/proc'
import { cgroup2Root } from '../lib/cgroup'

// Agent memory and start-up with up to 1,000 pods on one node, beyond the lab's 253
// pods per node: a lightweight harness that makes, per pod, only what enrollment
// touches — a network namespace (lo up) and a cgroup — writes a cluster file (a v1
// List, pods located by the lab's annotations, as src/lab/cluster-file.ts does) and
// runs `ferry agent` directly in its own node namespace and cgroup (with the DaemonSet's
// NODE_OPTIONS, src/config/env.ts HEAP), without a CA (no
// certificates: the per-pod figure here is capture, listeners and bookkeeping; the
// `scale` benchmark measures it with identities, up to 250 pods). Start-up is the time
// from spawning the agent until /healthz/ready answers 200. Each series runs the agent
// with one --workers count (every worker serves every pod: its own listeners in each pod).
// Everything is removed after.

export interface PodsPoint {
  readonly pods: number
  readonly readyMs: number
  readonly agentRssBytes: number
}

/** The pod counts with one --workers count. */
export interface PodsSeries {
  readonly workers: number
  readonly points: PodsPoint[]
  /** RSS growth per pod between the smallest and the largest count, bytes. */
  readonly bytesPerPod: number
}

export interface PodsResult {
  readonly byWorkers: PodsSeries[]
}

const READY_PORT = 15021
const PARALLEL = 16

/** Removes what the point in progress made; the runner calls it on SIGINT/SIGTERM. */
let active: (() => Promise<void>) | null = null
export async function abortPods (): Promise<void> { await active?.() }

export function harnessClusterList (prefix: string, node: string, pods: number, netnsDir: string, cgroupRoot: string): object {
  const items: object[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'scale', labels: { 'kubernetes.io/metadata.name': 'scale', 'ferry.dev/mesh': 'enabled' } }, status: { phase: 'Active' } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: node }, spec: { podCIDR: '10.250.0.0/16' }, status: { addresses: [{ type: 'InternalIP', address: '172.31.0.1' }], conditions: [{ type: 'Ready', status: 'True' }] } }
  ]
  for (let i = 0; i < pods; i++) {
    const ip = `10.250.${Math.floor(i / 250)}.${(i % 250) + 2}`
    items.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `p${i}`, namespace: 'scale', uid: `${prefix}-uid-${i}`, labels: { app: `p${i % 10}` }, annotations: { 'lab.ferry.dev/netns': join(netnsDir, `${prefix}-${i}`), 'lab.ferry.dev/cgroup': join(cgroupRoot, 'pods', `p${i}`) } },
      spec: { nodeName: node, serviceAccountName: `sa${i % 10}`, containers: [{ name: 'main', command: ['sleep', 'infinity'] }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '172.31.0.1', hostIPs: [{ ip: '172.31.0.1' }] }
    })
  }
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items }
}

async function pool<T> (items: readonly T[], fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: PARALLEL }, async () => { while (next < items.length) await fn(items[next++]) }))
}

async function ip (args: string[]): Promise<void> {
  const r = await exec('ip', args, { timeoutMs: 15_000 })
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`)
}

async function onePoint (ctx: Pick<Context, 'workDir' | 'log'>, pods: number, workers: number): Promise<PodsPoint> {
  const prefix = `fbh${process.pid}`
  const nodeNs = `${prefix}-node`
  const cgroupRoot = join(cgroup2Root(), `ferry-bench-${process.pid}`)
  const pinRoot = join('/sys/fs/bpf', `ferry-bench-${process.pid}`)
  const netnsDir = '/var/run/netns'
  const clusterFile = join(ctx.workDir, `pods-${pods}-w${workers}.json`)
  const indices = Array.from({ length: pods }, (_, i) => i)
  let agentPid: number | undefined
  const teardown = async (): Promise<void> => {
    active = null
    if (agentPid !== undefined) {
      try { process.kill(agentPid, 'SIGKILL') } catch {}
      await sleep(300)
    }
    await pool(indices, async (i) => { await exec('ip', ['netns', 'del', `${prefix}-${i}`], { timeoutMs: 15_000 }) })
    await exec('ip', ['netns', 'del', nodeNs], { timeoutMs: 15_000 })
    rmSync(pinRoot, { recursive: true, force: true })
    removeCgroups(cgroupRoot)
  }
  active = teardown
  try {
    mkdirSync(join(cgroupRoot, 'agent'), { recursive: true })
    for (const i of indices) mkdirSync(join(cgroupRoot, 'pods', `p${i}`), { recursive: true })
    await ip(['netns', 'add', nodeNs])
    await ip(['-n', nodeNs, 'link', 'set', 'lo', 'up'])
    await pool(indices, async (i) => { await ip(['netns', 'add', `${prefix}-${i}`]); await ip(['-n', `${prefix}-${i}`, 'link', 'set', 'lo', 'up']) })
    writeFileSync(clusterFile, JSON.stringify(harnessClusterList(prefix, 'node1', pods, netnsDir, cgroupRoot)))
    const logFile = join(ctx.workDir, `pods-${pods}-w${workers}-agent.log`)
    const log = openSync(logFile, 'a')
    const started = performance.now()
    const child = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroupRoot, 'agent', 'cgroup.procs'),
      'nsenter', `--net=${join(netnsDir, nodeNs)}`, '--', process.execPath, FERRY, 'agent', '--node', 'node1', '--cluster-file', clusterFile, '--pin-root', pinRoot, '--workers', String(workers), '--log-level', 'warn'],
    { cwd: REPO, stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', NODE_OPTIONS: HEAP.agentNodeOptions } })
    closeSync(log)
    agentPid = child.pid
    let readyMs = NaN
    const deadline = Date.now() + 180_000
    while (Date.now() < deadline && child.exitCode === null) {
      const r = await exec('nsenter', [`--net=${join(netnsDir, nodeNs)}`, '--', 'curl', '-sf', '-o', '/dev/null', '--max-time', '1', `http://127.0.0.1:${READY_PORT}/healthz/ready`], { timeoutMs: 5000 })
      if (r.code === 0) { readyMs = performance.now() - started; break }
      await sleep(50)
    }
    if (!Number.isFinite(readyMs)) throw new Error(`agent with ${pods} pods and ${workers} workers never ready (log: ${logFile})`)
    await sleep(2000)
    const rss = rssBytes(agentPid as number)
    ctx.log(`pods ${pods}, ${workers} worker(s): agent ready in ${(readyMs / 1000).toFixed(2)} s, RSS ${(rss / 2 ** 20).toFixed(1)} MiB`)
    return { pods, readyMs, agentRssBytes: rss }
  } finally {
    if (active === teardown) await teardown()
  }
}

/** cgroup directories are removed with rmdir, leaves first. */
function removeCgroups (dir: string): void {
  let entries: string[] = []
  try { entries = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) } catch { return }
  for (const e of entries) removeCgroups(join(dir, e))
  try { rmdirSync(dir) } catch {}
}

export async function manyPods (ctx: Pick<Context, 'workDir' | 'log'>, counts: readonly number[], workerCounts: readonly number[]): Promise<PodsResult> {
  const byWorkers: PodsSeries[] = []
  for (const workers of workerCounts) {
    const points: PodsPoint[] = []
    for (const n of counts) points.push(await onePoint(ctx, n, workers))
    byWorkers.push({ workers, points, bytesPerPod: growthPerPod(points) })
  }
  return { byWorkers }
}

/** RSS growth per pod between the smallest and the largest count (NaN with one point). */
export function growthPerPod (points: ReadonlyArray<{ readonly pods: number, readonly agentRssBytes: number }>): number {
  const first = points[0]
  const last = points[points.length - 1]
  return points.length > 1 ? (last.agentRssBytes - first.agentRssBytes) / (last.pods - first.pods) : NaN
}
