import type { WorkersResult, WorkersRun } from '../cases/workers'
import type { ThreadCpu } from '../lib/threads'
import { median } from './stats'

// The `workers` benchmark summarized: per worker count, the median over its runs of
// each figure; and whether, with 2 workers, node1's agent worked on both cores. Pure.

export interface WorkersRow {
  readonly workers: number
  /** Workers node1's agent listed. */
  readonly served: number
  readonly runs: number
  readonly reqPerSec: number
  readonly cpuUsPerRequest: number
  readonly connPerSec: number
  readonly cpuUsPerConnection: number
  readonly node1RssIdleBytes: number
  readonly node1RssPeakBytes: number
  readonly node2RssPeakBytes: number
  /** node1's agent's CPU over the keep-alive run, all threads, ÷ its wall time: cores used. */
  readonly node1Cores: number
  /** The busiest thread's and the second's CPU seconds (medians over the runs). */
  readonly busiest: readonly [number, number]
  /** The most cores its threads ran on together in a 100 ms window (median over the runs; NaN where not sampled). */
  readonly peakCores: number
  /** The share of those windows above one core (median over the runs). */
  readonly overOneCore: number
  readonly wallSeconds: number
}

const cpuOf = (threads: readonly ThreadCpu[], i: number): number => threads[i]?.cpuSeconds ?? 0

export function workersRows (w: WorkersResult): WorkersRow[] {
  return w.counts.map((count) => {
    const runs = w.runs.filter((r) => r.workers === count)
    const m = (f: (r: WorkersRun) => number | null | undefined): number => median(runs.map(f))
    return {
      workers: count,
      served: runs[0]?.served ?? NaN,
      runs: runs.length,
      reqPerSec: m((r) => r.keepalive.load.reqPerSec),
      cpuUsPerRequest: m((r) => r.keepalive.proxyCpuUsPerRequest),
      connPerSec: m((r) => r.newconn.load.reqPerSec),
      cpuUsPerConnection: m((r) => r.newconn.proxyCpuUsPerRequest),
      node1RssIdleBytes: m((r) => r.node1RssIdleBytes),
      node1RssPeakBytes: m((r) => r.node1RssPeakBytes),
      node2RssPeakBytes: m((r) => r.node2RssPeakBytes),
      node1Cores: m((r) => r.node1Threads.reduce((s, t) => s + t.cpuSeconds, 0) / r.wallSeconds),
      busiest: [m((r) => cpuOf(r.node1Threads, 0)), m((r) => cpuOf(r.node1Threads, 1))],
      peakCores: m((r) => r.node1Concurrency?.peakCores),
      overOneCore: m((r) => r.node1Concurrency === undefined || r.node1Concurrency.windows === 0 ? null : r.node1Concurrency.windowsOverOneCore / r.node1Concurrency.windows),
      wallSeconds: m((r) => r.wallSeconds)
    }
  })
}

/**
 * CPU ÷ wall time that proves two threads ran at once in a window: above 1 by more than
 * reading /proc's files one after the other can blur (a few ms per 100 ms window).
 */
export const BOTH_CORES_MIN_PEAK = 1.05

/**
 * With 2 workers: did node1's agent run on both cores? In a run, yes when its two
 * busiest threads are event loops other than the main thread (its workers) and, in at
 * least one 100 ms window, its threads together ran more than BOTH_CORES_MIN_PEAK cores
 * — two of them on CPU at the same time. Met when it holds in most runs. Null without a
 * 2-worker run.
 */
export function bothCores (w: WorkersResult | undefined): { readonly met: boolean, readonly summary: string } | null {
  const runs = (w?.runs ?? []).filter((r) => r.workers === 2)
  if (runs.length === 0) return null
  const ok = (r: WorkersRun): boolean => {
    const top = r.node1Threads.slice(0, 2)
    return top.length === 2 && top.every((t) => t.role === 'event loop') && (r.node1Concurrency?.peakCores ?? 0) > BOTH_CORES_MIN_PEAK
  }
  const passed = runs.filter(ok).length
  const role = (t: ThreadCpu): string => t.role === 'main' ? 'main' : t.role === 'event loop' ? 'loop' : 'other'
  const each = runs.map((r) => r.node1Threads.slice(0, 2).map((t) => `${role(t)} ${t.cpuSeconds.toFixed(2)}`).join(' + ') + ` of ${r.wallSeconds.toFixed(1)} s` +
    (r.node1Concurrency === undefined ? '' : `, peak ${r.node1Concurrency.peakCores.toFixed(2)} cores, ${r.node1Concurrency.windowsOverOneCore} of ${r.node1Concurrency.windows} windows > 1`))
  return { met: passed * 2 > runs.length, summary: `${passed} of ${runs.length} runs (${each.join('; ')})` }
}
