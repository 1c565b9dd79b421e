import type { ConnectionPoolLimits, OutlierDetection } from '../routing/model'
import { backendBusy, ENDPOINT_WORDS, endpointBusy, RING, SharedOutlierTracker } from './outliers'
import { forgetPoolWorker, POOL_WORDS, poolBusy, SharedPoolGate } from './pool-gate'
import { BUCKET_WORDS, bucketBusy, type RateLimitSpec, SharedRateLimit } from './rate-limit'
import { BUDGET_WORDS, SharedRetryBudget } from './retry-budget'
import { SharedTable, type TableSpec } from './shared-table'

// The node's traffic limits as a worker reaches them: one block of shared memory the
// main thread allocates (NodeLimits.allocate, src/agent/agent.ts) and hands to every
// data-path worker at its start and again after a restart (src/worker/thread.ts; the
// inline worker of --workers 1 gets the same), so a limit is the node's whoever counts
// against it. Each kind has its table (shared-table.ts); keys name what a limit is of,
// the same way in every worker, so every worker lands on the same slot:
//
//   retry budget     budgetFor(backendKey)                 "budget|<backendKey>"
//   pool limits      poolFor(backendKey, limits)           "pool|<backendKey>"
//   outliers         outliersFor(backendKey, policy)       "<backendKey>|<endpoint id>", "<backendKey>"
//   rate limit       rateLimitFor(podUid, spec, policy)    "<pod uid>"
//
// backendKey names a backend (src/routing/model.ts BackendRef) as backendKeyOf does:
// "namespace/name:port" and "#subset" when a subset is chosen. The connection-level
// (L4) outlier detection of a Service port uses the same key with no subset.
//
// When a table is full for a key (it should not be: sized for thousands of backends and
// endpoints, stale slots reclaimed after 10 minutes), that key degrades as follows, and
// the misses are counted (stats):
//   retry budget   no retries (deposits dropped; withdrawals refused: no extra load)
//   pool limits    admitted (the backend's limits are not enforced)
//   outliers       nothing ejected (results not recorded)
//   rate limit     allowed (the pod is not limited)

export interface NodeLimitsSizes {
  readonly backends: number
  readonly endpoints: number
  readonly pods: number
}

/** Default sizes: 4096 backends (budgets, pools, outlier rings), 16384 endpoints, 4096 rate-limited pods: 2,228,224 bytes (2.1 MiB), pages touched only as slots are used. */
export const NODE_LIMITS_SIZES: NodeLimitsSizes = Object.freeze({ backends: 4096, endpoints: 16384, pods: 4096 })

/** What crosses to a worker (structured clone keeps the SharedArrayBuffer shared). */
export interface NodeLimitsMemory {
  readonly buffer: SharedArrayBuffer
  readonly sizes: NodeLimitsSizes
}

interface Layout {
  readonly budgets: TableSpec
  readonly pools: TableSpec
  readonly endpoints: TableSpec
  readonly backends: TableSpec
  readonly buckets: TableSpec
}

function layoutOf (s: NodeLimitsSizes): Layout {
  return {
    budgets: { slots: s.backends, payloadWords: BUDGET_WORDS },
    pools: { slots: s.backends, payloadWords: POOL_WORDS },
    endpoints: { slots: s.endpoints, payloadWords: ENDPOINT_WORDS },
    backends: { slots: s.backends, payloadWords: RING },
    buckets: { slots: s.pods, payloadWords: BUCKET_WORDS }
  }
}

/** "namespace/name:port", and "#subset" for a DestinationRule subset. */
export function backendKeyOf (b: { readonly service: string, readonly port: number, readonly subset: { readonly name: string } | null }): string {
  return b.subset === null ? `${b.service}:${b.port}` : `${b.service}:${b.port}#${b.subset.name}`
}

export class NodeLimits {
  private readonly budgets: SharedTable
  private readonly pools: SharedTable
  private readonly endpoints: SharedTable
  private readonly backends: SharedTable
  private readonly buckets: SharedTable

  /** The memory for `sizes` (the main thread, once per agent). */
  static allocate (sizes: NodeLimitsSizes = NODE_LIMITS_SIZES): NodeLimitsMemory {
    return { buffer: new SharedArrayBuffer(NodeLimits.bytesFor(sizes)), sizes }
  }

  static bytesFor (sizes: NodeLimitsSizes): number {
    return Object.values(layoutOf(sizes)).reduce((n: number, t: TableSpec) => n + SharedTable.bytesFor(t), 0)
  }

  /** Worker `worker`'s view of `memory` (the main thread's: any id); `now` is the clock (tests inject one). */
  constructor (readonly memory: NodeLimitsMemory, private readonly now: () => number = Date.now, private readonly worker = 0) {
    const l = layoutOf(memory.sizes)
    let offset = 0
    const table = (spec: TableSpec, busy?: (w: Int32Array, base: number, nowMs: number) => boolean): SharedTable => {
      const t = new SharedTable(memory.buffer, offset, spec, busy)
      offset += SharedTable.bytesFor(spec)
      return t
    }
    this.budgets = table(l.budgets)
    this.pools = table(l.pools, poolBusy)
    this.endpoints = table(l.endpoints, endpointBusy)
    this.backends = table(l.backends, backendBusy)
    this.buckets = table(l.buckets, bucketBusy)
  }

  budgetFor (backendKey: string): SharedRetryBudget {
    return new SharedRetryBudget(this.budgets, `budget|${backendKey}`, this.now)
  }

  poolFor (backendKey: string, limits: ConnectionPoolLimits): SharedPoolGate {
    return new SharedPoolGate(this.pools, `pool|${backendKey}`, limits, this.now, this.worker)
  }

  /**
   * Worker `id` ended without releasing what it held (the main thread, after its exit and
   * before a new worker takes the id): its connection-pool counts are zeroed.
   */
  forgetWorker (id: number): void {
    forgetPoolWorker(this.pools, id)
  }

  /** `endpointCount`: the backend's endpoints now (for max ejection percent and the last healthy one). */
  outliersFor (backendKey: string, policy: OutlierDetection, endpointCount?: () => number): SharedOutlierTracker {
    return new SharedOutlierTracker({ endpoints: this.endpoints, backends: this.backends }, backendKey, policy, endpointCount ?? null)
  }

  /** `policy`: "RateLimit ns/name". */
  rateLimitFor (podUid: string, spec: RateLimitSpec, policy: string): SharedRateLimit {
    return new SharedRateLimit(this.buckets, podUid, spec, policy)
  }

  /** Slots in use and lookups that found the table full, per table (walks the tables: diagnostics). */
  stats (): Record<'budgets' | 'pools' | 'endpoints' | 'backends' | 'buckets', { slots: number, used: number, full: number }> {
    const s = (t: SharedTable): { slots: number, used: number, full: number } => ({ slots: t.slots, used: t.used(), full: t.full() })
    return { budgets: s(this.budgets), pools: s(this.pools), endpoints: s(this.endpoints), backends: s(this.backends), buckets: s(this.buckets) }
  }
}
