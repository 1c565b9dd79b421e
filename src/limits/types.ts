import type { BudgetCounts } from './retry-budget'

// The node-wide traffic limits (one set per node, shared by every data-path worker, as
// Envoy shares its circuit breakers across workers): what the router (src/routing/) and
// the engine (src/http/) ask of them. The state behind them lives in shared memory the
// main thread made (src/limits/shared-table.ts); a worker's copy of a limit is never a
// limit of its own — that would multiply it by the number of workers.

/** The retry budget: retries ≤ ratio × requests + minPerSecond (src/limits/retry-budget.ts). */
export interface RetryBudget {
  /** An original request (not a retry) was sent: it earns `ratio` of a retry. */
  deposit (): void
  /**
   * Takes one retry from the budget: the milliseconds the retry must wait for its turn
   * (0: now; at most one floor interval), or null when exhausted (the retry is not sent,
   * flag URX).
   */
  withdraw (): number | null
  /** The window's counts now, node-wide: shown by /debug/config, never decided on. */
  counts (): BudgetCounts
}

/** Connection-pool limits of one backend (service port, subset), node-wide. */
export interface PoolGate {
  /** A request may start (in-flight and pending limits); false: overflow (503, flag UO). Pair with `releaseRequest`. */
  acquireRequest (): boolean
  releaseRequest (): void
  /**
   * An upstream connection may be opened (maxConnections); pair with `releaseConnection`.
   * `force`: counted even over the limit, and true (a pool with no connection opens one
   * anyway, as Envoy does, so its waiting requests are never left without one).
   */
  acquireConnection (force?: boolean): boolean
  releaseConnection (): void
  /** Requests and connections held now, node-wide: shown by /debug/config. */
  counts (): { requests: number, connections: number }
}

/** What one response (or failure) says about an endpoint's health (Envoy's outlier detection). */
export type EndpointResult = 'success' | '5xx' | 'gateway_error' | 'local_failure'

/** Outlier detection of one backend's endpoints, node-wide. */
export interface OutlierTracker {
  /**
   * Whether the endpoint (by Endpoint.id) is ejected at `nowMs`. `endpointCount`: the
   * backend's endpoints now (min health percent); absent: what the tracker was made with.
   */
  ejected (endpointId: string, nowMs: number, endpointCount?: number): boolean
  /** `endpointCount`: as for `ejected` (max ejection percent, never the last healthy endpoint). */
  report (endpointId: string, result: EndpointResult, nowMs: number, endpointCount?: number): void
}

/** A local rate limit's decision for one request (headers `x-ratelimit-limit`, `-remaining`, `-reset`). */
export interface RateLimitVerdict {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number
  /** "RateLimit ns/name": what limited it (counted, logged). */
  readonly policy: string
}

/** The rate limit of one destination pod; null from `take` when none applies. */
export interface RequestRateLimit {
  take (nowMs: number): RateLimitVerdict | null
}
