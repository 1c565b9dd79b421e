import type { Pod } from '../discovery/model'
import type { NodeLimits } from './node-limits'
import type { RateLimitSpec } from './rate-limit'
import type { RequestRateLimit } from './types'

// The destination's rate-limit lookup by pod (src/proxy/l7-destination.ts): which
// RateLimit applies to a pod comes from `rateLimitOf` (the configuration snapshot in
// force: src/limits/rate-limit-select.ts builds it from the RateLimit objects); the
// bucket is the pod's node-wide one (node-limits.ts, keyed by pod uid). The limiter
// objects are kept per pod and spec, so a request allocates nothing to find its bucket.

/** The RateLimit that applies to a pod: its limit and "RateLimit ns/name". */
export interface PodRateLimitSpec extends RateLimitSpec {
  readonly policy: string
}

export type RateLimitOf = (pod: Pod) => PodRateLimitSpec | null

export class PodRateLimits {
  private rateLimitOf: RateLimitOf = () => null
  private readonly byPod = new Map<string, { spec: PodRateLimitSpec, limit: RequestRateLimit }>()

  constructor (private readonly limits: NodeLimits) {}

  /** A new configuration: which RateLimit applies to which pod. */
  replace (rateLimitOf: RateLimitOf): void {
    this.rateLimitOf = rateLimitOf
    this.byPod.clear()
  }

  /** The pod's node-wide rate limit; null: none applies. */
  of (pod: Pod): RequestRateLimit | null {
    const spec = this.rateLimitOf(pod)
    if (spec === null) return null
    const held = this.byPod.get(pod.uid)
    if (held !== undefined && held.spec === spec) return held.limit
    const limit = this.limits.rateLimitFor(pod.uid, spec, spec.policy)
    // Bounded by the pods this worker serves requests to; dropped whole with each configuration.
    this.byPod.set(pod.uid, { spec, limit })
    return limit
  }
}
