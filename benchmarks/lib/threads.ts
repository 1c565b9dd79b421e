import { readdirSync, readFileSync } from 'node:fs'
import { CLOCK_TICKS_PER_SECOND } from './proc'

// CPU time per thread of a process, from /proc/<pid>/task/<tid>/stat, to show how the
// agent's work spreads over its threads. Node 20 names every thread "node"
// (/proc/<pid>/task/<tid>/comm), so a thread's role is told by where it waits: an event
// loop (the main thread, each data-path worker, and Node's platform's delayed-task
// scheduler) sleeps in epoll_wait; libuv's thread pool and V8's platform threads sleep on
// a futex. /proc/<pid>/task/<tid>/wchan names the kernel function a sleeping thread
// waits in (0 while it runs), so the role is read from several snapshots. And whether
// the threads ran on several cores at once: their on-CPU time over 100 ms windows.

export type ThreadRole = 'main' | 'event loop' | 'other'

export interface ThreadSnapshot {
  readonly tid: number
  readonly comm: string
  readonly cpuSeconds: number
  /** The kernel function it was sleeping in ('' while running). */
  readonly wchan: string
}

export interface ThreadCpu {
  readonly tid: number
  readonly comm: string
  readonly role: ThreadRole
  /** CPU seconds (user + system) between the two snapshots. */
  readonly cpuSeconds: number
}

function read (path: string): string {
  try { return readFileSync(path, 'utf8') } catch { return '' }
}

/** Every thread of `pid` now (threads that end while it is read are left out). */
export function threadSnapshot (pid: number): ThreadSnapshot[] {
  let tids: string[]
  try { tids = readdirSync(`/proc/${pid}/task`) } catch { return [] }
  const out: ThreadSnapshot[] = []
  for (const t of tids) {
    const stat = read(`/proc/${pid}/task/${t}/stat`)
    if (stat === '') continue
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const wchan = read(`/proc/${pid}/task/${t}/wchan`).trim()
    out.push({
      tid: Number(t),
      comm: read(`/proc/${pid}/task/${t}/comm`).trim(),
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND,
      wchan: wchan === '0' ? '' : wchan
    })
  }
  return out
}

/**
 * Each thread's CPU between `before` and `after` (threads present in `after`; a thread
 * new since `before` counts from zero), busiest first. The main thread is the one whose
 * tid is the pid; an event loop is a thread seen waiting in epoll in any snapshot.
 */
export function threadCpu (pid: number, before: readonly ThreadSnapshot[], after: readonly ThreadSnapshot[], extra: ReadonlyArray<readonly ThreadSnapshot[]> = []): ThreadCpu[] {
  const start = new Map(before.map((t) => [t.tid, t.cpuSeconds]))
  const epoll = new Set([before, after, ...extra].flat().filter((t) => /epoll/.test(t.wchan)).map((t) => t.tid))
  const roleOf = (tid: number): ThreadRole => tid === pid ? 'main' : epoll.has(tid) ? 'event loop' : 'other'
  return after.map((t): ThreadCpu => ({ tid: t.tid, comm: t.comm, role: roleOf(t.tid), cpuSeconds: Math.max(0, t.cpuSeconds - (start.get(t.tid) ?? 0)) }))
    .sort((a, b) => b.cpuSeconds - a.cpuSeconds)
}

/** Snapshots `pid`'s threads every `intervalMs` (for their wait channels) until stopped. */
export function threadSampler (pid: number, intervalMs = 500): { stop: () => ThreadSnapshot[][] } {
  const samples: ThreadSnapshot[][] = []
  const timer = setInterval(() => { samples.push(threadSnapshot(pid)) }, intervalMs)
  return { stop: () => { clearInterval(timer); return samples } }
}

/** How many cores a process's threads ran on together, over short windows. */
export interface Concurrency {
  /** Windows sampled. */
  readonly windows: number
  /** The largest CPU ÷ wall time of any window: above 1, two threads ran at once. */
  readonly peakCores: number
  /** Windows in which the threads together ran more than one core. */
  readonly windowsOverOneCore: number
}

/** On-CPU nanoseconds of each thread (/proc/<pid>/task/<tid>/schedstat, the scheduler's own count). */
function onCpuNs (pid: number): Map<number, number> {
  const out = new Map<number, number>()
  let tids: string[]
  try { tids = readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const t of tids) {
    const s = read(`/proc/${pid}/task/${t}/schedstat`)
    if (s !== '') out.set(Number(t), Number(s.split(' ')[0]))
  }
  return out
}

/** CPU ÷ wall time of each window between consecutive samples (threads in both samples only). */
export function concurrencyOf (samples: ReadonlyArray<{ readonly atMs: number, readonly ns: ReadonlyMap<number, number> }>): Concurrency {
  const cores: number[] = []
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]
    const b = samples[i]
    const wallNs = (b.atMs - a.atMs) * 1e6
    if (wallNs <= 0) continue
    let cpu = 0
    for (const [tid, ns] of b.ns) {
      const before = a.ns.get(tid)
      if (before !== undefined) cpu += Math.max(0, ns - before)
    }
    cores.push(cpu / wallNs)
  }
  return { windows: cores.length, peakCores: cores.length === 0 ? NaN : Math.max(...cores), windowsOverOneCore: cores.filter((c) => c > 1).length }
}

/** Samples `pid`'s threads' on-CPU time every `intervalMs` until stopped; then how many cores they ran on together. */
export function concurrencySampler (pid: number, intervalMs = 100): { stop: () => Concurrency } {
  const samples: Array<{ atMs: number, ns: Map<number, number> }> = [{ atMs: performance.now(), ns: onCpuNs(pid) }]
  const timer = setInterval(() => { samples.push({ atMs: performance.now(), ns: onCpuNs(pid) }) }, intervalMs)
  return { stop: () => { clearInterval(timer); samples.push({ atMs: performance.now(), ns: onCpuNs(pid) }); return concurrencyOf(samples) } }
}
