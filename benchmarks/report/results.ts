import type { Machine } from '../lib/machine'
import type { Measured } from '../cases/measure'
import type { RateResult } from '../cases/rate'
import type { BulkResult } from '../cases/bulk'
import type { IdleResult } from '../cases/idle'
import type { PolicyResult } from '../cases/policy'
import type { ScaleResult } from '../cases/scale'
import type { PodsResult } from '../cases/pods'
import type { FloodResult } from '../cases/flood'
import type { MemoryResult } from '../cases/memory'
import type { WorkersResult } from '../cases/workers'
import type { ManyConnectionsResult } from '../cases/idle'
import type { L7Result } from '../cases/l7'

// The JSON a run writes (results/latest.json): every figure, keyed by benchmark and
// path id, plus the machine. Benchmarks not run (--only) or failed are absent; a
// failure's message is in `errors`. The benchmarks with targets (keepalive, rates,
// newconn, bulk) run `runs` times, the paths interleaved: every run is in `runs`, and
// `keepalive`, `rates`, `newconn` and `bulk` hold each figure's median over them.

export const PATH_ORDER = ['direct-same', 'ferry-same', 'direct-cross', 'ferry-cross', 'haproxy-cross', 'nginx-cross'] as const

export interface Results {
  readonly machine: Machine
  readonly startedAt: string
  finishedAt?: string
  readonly quick: boolean
  /** Ferry's agents ran with --sockmap off. */
  readonly sockmapOff?: boolean
  /** Wall time of each benchmark, s (labs brought up for all of them not included). */
  durationsSeconds?: Record<string, number>
  /** Data-path workers of the mesh lab's agents (what /debug/workers lists on node1). */
  meshWorkers?: number
  /** Proxy RSS at idle right after the labs came up, by path id. */
  idleRss?: Record<string, number>
  /** Every alternated run of the benchmarks with targets. */
  runs?: AlternatedRuns
  /** Median over `runs.keepalive`, figure by figure. */
  keepalive?: Record<string, Measured>
  /** Median over `runs.rates`, by target rate, then path. */
  rates?: Record<string, Record<string, RateResult>>
  /** Median over `runs.newconn`. */
  newconn?: Record<string, Measured>
  /** Median over `runs.bulk`. */
  bulk?: Record<string, BulkResult>
  idle?: Record<string, IdleResult>
  /** 10,000 idle connections held on the cross-node path: both agents' memory. */
  manyConnections?: ManyConnectionsResult
  /** The cross-node loads with the agents at 1, 2 and 4 data-path workers. */
  workers?: WorkersResult
  policy?: PolicyResult
  scale?: ScaleResult
  /** The many-pods harness (no CA), up to 1,000 pods. */
  pods?: PodsResult
  /** Cross-node p99 with node2's tunnel port flooded, against quiet. */
  flood?: FloodResult
  /** node2's agent memory while a verified peer fills its tunnel buffer budget. */
  memory?: MemoryResult
  /** HTTP/1.1 and gRPC through Ferry's L7 proxy, its L4 path and the nginx peer (a lab of its own). */
  l7?: L7Result
  errors: Record<string, string>
}

/** One run of a benchmark: when it started, the order its paths ran in, their figures. */
export interface AlternatedRun<T> {
  readonly startedAt: string
  /** The host's 1-minute load average when the run started (other work on the machine shows here). */
  readonly loadAverage?: number
  readonly order: readonly string[]
  readonly figures: T
}

export interface AlternatedRuns {
  /** Runs asked for (--runs). */
  readonly count: number
  keepalive?: Array<AlternatedRun<Record<string, Measured>>>
  /** By target rate, then path. */
  rates?: Array<AlternatedRun<Record<string, Record<string, RateResult>>>>
  newconn?: Array<AlternatedRun<Record<string, Measured>>>
  bulk?: Array<AlternatedRun<Record<string, BulkResult>>>
}

/** The direct path a meshed path is compared with. */
export function baselineOf (pathId: string): string {
  return pathId.endsWith('-same') ? 'direct-same' : 'direct-cross'
}
