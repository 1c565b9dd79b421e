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

// The JSON a run writes (results/latest.json): every figure, keyed by benchmark and
// path id, plus the machine. Benchmarks not run (--only) or failed are absent; a
// failure's message is in `errors`.

export const PATH_ORDER = ['direct-same', 'ferry-same', 'direct-cross', 'ferry-cross', 'haproxy-cross', 'nginx-cross'] as const

export interface Results {
  readonly machine: Machine
  readonly startedAt: string
  finishedAt?: string
  readonly quick: boolean
  /** Ferry's agents ran with --sockmap off. */
  readonly sockmapOff?: boolean
  /** Proxy RSS at idle right after the labs came up, by path id. */
  idleRss?: Record<string, number>
  keepalive?: Record<string, Measured>
  rates?: Record<string, Record<string, RateResult>>
  newconn?: Record<string, Measured>
  bulk?: Record<string, BulkResult>
  idle?: Record<string, IdleResult>
  policy?: PolicyResult
  scale?: ScaleResult
  /** The many-pods harness (no CA), up to 1,000 pods. */
  pods?: PodsResult
  /** Cross-node p99 with node2's tunnel port flooded, against quiet. */
  flood?: FloodResult
  /** node2's agent memory while a verified peer fills its tunnel buffer budget. */
  memory?: MemoryResult
  errors: Record<string, string>
}

/** The direct path a meshed path is compared with. */
export function baselineOf (pathId: string): string {
  return pathId.endsWith('-same') ? 'direct-same' : 'direct-cross'
}
