import type { UpstreamTarget } from '../http/context'
import type { Endpoint } from '../discovery/service-index'
import type { EndpointResult } from '../limits/types'
import type { Backend } from './backends'
import type { Attempt, AttemptOutcome, AttemptRefusal, BackendRef, HeaderEdits, RequestPlan, RetryPolicy, RouteRule } from './model'

// One request's plan (model.ts RequestPlan) over a worker's backends: each attempt picks
// an endpoint with the backend's balancer (ejected endpoints skipped, tried ones avoided
// while another is eligible), is admitted by the backend's node-wide pool limits, and
// reports how it ended to the balancer (latency) and outlier detection.

/** What a plan is made of: the plan's own fields, with the worker's backends in place of their references. */
export type PlanParts = Omit<RequestPlan, 'backend' | 'mirrors' | 'attempt' | 'retryDelay' | 'mirrorTarget'> & {
  readonly backend: Backend
  readonly mirrors: readonly Backend[]
  /** Consistent hashing's input for this request, null: none. */
  readonly hash: string | null
}

export interface PlanEnv {
  readonly now: () => number
  readonly targetOf: (e: Endpoint) => UpstreamTarget
}

export class Plan implements RequestPlan {
  readonly rule: RouteRule | null
  readonly backend: BackendRef
  readonly path: string | null
  readonly authority: string | null
  readonly requestHeaders: readonly HeaderEdits[]
  readonly responseHeaders: readonly HeaderEdits[]
  readonly timeoutMs: number | null
  readonly perTryTimeoutMs: number | null
  readonly retry: RetryPolicy | null
  readonly delayMs: number
  readonly mirrors: readonly BackendRef[]

  constructor (private readonly p: PlanParts, private readonly env: PlanEnv) {
    this.rule = p.rule
    this.backend = p.backend.ref
    this.path = p.path
    this.authority = p.authority
    this.requestHeaders = p.requestHeaders
    this.responseHeaders = p.responseHeaders
    this.timeoutMs = p.timeoutMs
    this.perTryTimeoutMs = p.perTryTimeoutMs
    this.retry = p.retry
    this.delayMs = p.delayMs
    this.mirrors = p.mirrors.map((m) => m.ref)
    // An original request earns its share of retries.
    p.backend.budget?.deposit()
  }

  attempt (tried: readonly UpstreamTarget[]): Attempt | AttemptRefusal {
    const b = this.p.backend
    const now = this.env.now()
    const triedIds = new Set(tried.map((t) => `${t.address.address}|${t.address.port}`))
    const healthy = b.outliers === null ? () => true : (e: Endpoint) => !(b.outliers as NonNullable<Backend['outliers']>).ejected(e.id, now)
    const e = b.balancer.pick({ eligible: (x) => healthy(x) && !triedIds.has(x.id), hash: this.p.hash }) ??
      (triedIds.size === 0 ? null : b.balancer.pick({ eligible: healthy, hash: this.p.hash }))
    if (e === null) return 'UH'
    if (b.pool !== null && !b.pool.acquireRequest()) return 'UO'
    const placed = b.balancer.place(e, now)
    let ended = false
    return {
      target: this.env.targetOf(e),
      connections: b.connections,
      end: (outcome: AttemptOutcome): void => {
        if (ended) return
        ended = true
        const at = this.env.now()
        placed.end(at, failed(outcome))
        b.pool?.releaseRequest()
        const result = endpointResult(outcome)
        if (result !== null) b.outliers?.report(e.id, result, at)
      }
    }
  }

  retryDelay (): number | null {
    const budget = this.p.backend.budget
    return budget === null ? 0 : budget.withdraw()
  }

  mirrorTarget (backend: BackendRef): UpstreamTarget | null {
    const m = this.p.mirrors.find((x) => x.ref === backend)
    if (m === undefined) return null
    const now = this.env.now()
    const e = m.balancer.pick({ eligible: (x) => m.outliers === null || !m.outliers.ejected(x.id, now), hash: null })
    return e === null ? null : this.env.targetOf(e)
  }
}

function failed (o: AttemptOutcome): boolean {
  return o.kind !== 'response' || o.status >= 500
}

/** Envoy's outlier detection: 502, 503, 504 are gateway errors (and 5xx), other 5xx are 5xx, failures to connect or reset are local-origin; a canceled attempt says nothing. */
export function endpointResult (o: AttemptOutcome): EndpointResult | null {
  switch (o.kind) {
    case 'response': return o.status >= 502 && o.status <= 504 ? 'gateway_error' : o.status >= 500 ? '5xx' : 'success'
    case 'connect_failure': case 'reset': case 'timeout': return 'local_failure'
    case 'canceled': return null
  }
}
