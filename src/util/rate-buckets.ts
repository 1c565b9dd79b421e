// Token buckets in a fixed block of shared memory: `count` buckets of one Int32 each, in
// an Int32Array that may sit on a SharedArrayBuffer, updated with Atomics so that several
// threads (the agent's future data-path workers) take from the same buckets.
//
// Each bucket is GCRA (the generic cell rate algorithm, a token bucket kept as one
// number): the bucket's "theoretical arrival time" (TAT), in wall-clock milliseconds
// truncated to 32 bits. A take at `now` is allowed when TAT − now ≤ (burst − 1) ×
// interval, and moves TAT to max(TAT, now) + interval: `burst` takes at once, then one
// per `interval`. One compare-and-swap per take, no allocation, no per-bucket timer.
//
// 32-bit milliseconds wrap every 49.7 days; differences are taken modulo 2^32. A TAT
// further ahead of now than any take can put it (a bucket untouched for weeks whose old
// value aliases into the future, or the wall clock stepped back) is treated as empty.
// 0 marks a bucket never used.

export interface RateSpec {
  /** Takes allowed per second, on average (1 … 1000). */
  readonly perSecond: number
  /** Takes allowed at once (≥ 1). */
  readonly burst: number
}

export class RateBuckets {
  private readonly interval: number
  /** Largest TAT − now at which a take is still allowed. */
  private readonly tolerance: number

  /**
   * Buckets view[offset … offset + count). The caller owns the memory (and zeroes it
   * once, before any take); every thread that shares it must pass the same spec.
   */
  constructor (private readonly view: Int32Array, private readonly offset: number, readonly count: number, spec: RateSpec) {
    this.interval = Math.max(1, Math.round(1000 / spec.perSecond))
    this.tolerance = (spec.burst - 1) * this.interval
  }

  /** Takes one from bucket `index` (0 … count − 1) at `nowMs`; false when it is empty. */
  take (index: number, nowMs: number): boolean {
    const i = this.offset + index
    const now = nowMs | 0
    for (;;) {
      const tat = Atomics.load(this.view, i)
      let ahead = (tat - now) | 0
      if (tat === 0 || ahead < 0 || ahead > this.tolerance + this.interval) ahead = 0
      if (ahead > this.tolerance) return false
      const next = ((now + ahead + this.interval) | 0) || 1
      if (Atomics.compareExchange(this.view, i, tat, next) === tat) return true
    }
  }
}

/** A single bucket in memory of its own (one thread, or share `.view.buffer`). */
export function singleBucket (spec: RateSpec, shared = false): RateBuckets {
  const view = new Int32Array(shared ? new SharedArrayBuffer(4) : new ArrayBuffer(4))
  return new RateBuckets(view, 0, 1, spec)
}
