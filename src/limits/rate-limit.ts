import type { SharedTable } from './shared-table'
import type { RateLimitVerdict, RequestRateLimit } from './types'

// A destination pod's local rate limit: one token bucket per pod for the whole node,
// every worker taking from it (one bucket per worker, or per source node, would multiply
// the limit). It answers what the engine puts in a 429's x-ratelimit-* headers.
//
// The bucket is GCRA (a token bucket kept as one number, as src/util/rate-buckets.ts):
// its "theoretical arrival time" (TAT) in microseconds of wall clock, a BigInt64 in the
// pod's slot of a shared table, moved by compare-and-swap. A request at `now` is allowed
// when TAT' = max(TAT, now) + T is at most `burst` × T ahead of now, T being the time one
// request's token takes to come back (perSeconds / requests). 64-bit microseconds: exact
// for any rate, no wrap. 0 marks a bucket never used (full).
//
//   limit      the bucket's size (burst)
//   remaining  tokens left after this request (0 when refused)
//   reset      seconds until the bucket is full again (rounded up)
//
// A slot is busy, never reclaimed, while its bucket is not full. A full table: no bucket
// can be kept and the request is allowed (fail open; counted by the table).

/** A RateLimit's limit: `requests` per `perSeconds`, up to `burst` at once (default: requests). */
export interface RateLimitSpec {
  readonly requests: number
  readonly perSeconds: number
  readonly burst?: number
}

/** Payload words of a bucket's slot (one BigInt64). */
export const BUCKET_WORDS = 2

export const bucketBusy = (w: Int32Array, base: number, nowMs: number): boolean => {
  const tat = Number(Atomics.load(new BigInt64Array(w.buffer, w.byteOffset + base * 4, 1), 0))
  return tat > nowMs * 1000
}

export class SharedRateLimit implements RequestRateLimit {
  private readonly intervalUs: number
  private readonly burst: number
  private readonly big: BigInt64Array

  /** `policy`: "RateLimit ns/name" (what limited a request: logged and counted). */
  constructor (private readonly table: SharedTable, private readonly key: string, spec: RateLimitSpec, private readonly policy: string) {
    this.intervalUs = Math.max(1, Math.round(spec.perSeconds * 1e6 / spec.requests))
    this.burst = Math.max(1, Math.floor(spec.burst ?? spec.requests))
    this.big = new BigInt64Array(table.words.buffer, table.words.byteOffset, table.words.length / 2)
  }

  take (nowMs: number): RateLimitVerdict {
    const base = this.table.find(this.key, nowMs)
    if (base < 0) return this.verdict(true, this.burst, 0)
    const i = base / 2
    const now = Math.floor(nowMs * 1000)
    const tau = this.burst * this.intervalUs
    for (;;) {
      const held = Atomics.load(this.big, i)
      const tat = Math.max(Number(held), now)
      const next = tat + this.intervalUs
      if (next - now > tau) return this.verdict(false, 0, tat - now)
      if (Atomics.compareExchange(this.big, i, held, BigInt(next)) === held) {
        return this.verdict(true, Math.floor((tau - (next - now)) / this.intervalUs), next - now)
      }
    }
  }

  private verdict (allowed: boolean, remaining: number, untilFullUs: number): RateLimitVerdict {
    return { allowed, limit: this.burst, remaining, resetSeconds: Math.ceil(untilFullUs / 1e6), policy: this.policy }
  }
}
