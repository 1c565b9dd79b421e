import type { SharedTable } from './shared-table'
import type { RetryBudget } from './types'

// The retry budget, node-wide: retries are at most RATIO of the original requests of the
// last WINDOW seconds plus MIN_PER_SECOND per second (retries ≤ 0.2 × requests + 10/s),
// whatever a route's `attempts` say, so a failing backend sees at most 1.2 × its callers'
// requests plus 10 per second, over any stretch of time, and never a retry storm.
//
// Two sources:
//   floor  a pace of one retry per 1/MIN_PER_SECOND s (100 ms), kept as GCRA (as
//          rate-limit.ts): the time its next turn is due. It never saves up: a turn
//          nobody takes is lost, and a retry may book the next turn ahead (at most one
//          interval ahead: it waits for it, withdraw's answer). So over any T seconds the
//          floor sends at most 1 + 10 × T retries. Linkerd keeps its floor as a reserve
//          of 10/s × the window instead, which a failing backend takes at once and takes
//          again each time the window slides past it: over 20 s up to three reserves,
//          more than 10/s over the run.
//   ratio  RATIO of the requests deposited in the last WINDOW one-second buckets: ratio
//          retries taken in the window stay under RATIO × its requests (strictly, so
//          that with the floor's first turn a run's retries stay within RATIO × its
//          requests + 10/s). Busy backends' share, and what absorbs a burst of failures
//          the floor's pace cannot.
// A retry takes, in order: the floor's turn if due now; the ratio, while it keeps a reserve
// (half the window's ratio, at least one second of the floor: 10); the floor's next turn
// (booked, waited for: at most 100 ms); the reserve. So a busy backend's retries do not wait (the ratio is ample), while a backend
// whose ratio runs low books every floor turn rather than losing it, and keeps the
// reserve for a burst.
//
// The counts live in one slot of a shared table (shared-table.ts) per backend, updated
// with Atomics by every worker: the floor's theoretical arrival time (µs, a BigInt64 at
// the payload's even start), then WINDOW buckets [second, deposits, ratio retries, floor
// retries]. A bucket whose second is past is reset by the first thread that needs it
// (compare-and-swap on its second, then its counts zeroed); a count racing that reset may
// be lost — one request among the second's, in either direction.
//
// A ratio withdrawal adds itself first and then checks the window, taking itself back
// when over: concurrent workers can only refuse too much, never allow too much. The floor
// moves by compare-and-swap: one retry per token.

export const RETRY_BUDGET = Object.freeze({ ratio: 0.2, minPerSecond: 10, windowSeconds: 10 })

const FLOOR_WORDS = 2
const BUCKET_WORDS = 4
const SECOND = 0
const DEPOSITS = 1
const RATIO_RETRIES = 2
const FLOOR_RETRIES = 3
const FLOOR_INTERVAL_US = Math.round(1e6 / RETRY_BUDGET.minPerSecond)

/** Payload words of one budget's slot. */
export const BUDGET_WORDS = FLOOR_WORDS + RETRY_BUDGET.windowSeconds * BUCKET_WORDS

export interface BudgetCounts {
  /** Original requests over the window. */
  readonly requests: number
  /** Retries taken over the window (floor and ratio). */
  readonly retries: number
  /** The most retries the window can hold: ratio × requests + the floor's pace × the window. */
  readonly allowed: number
}

/** One backend's budget, through `table`'s slot for `key`. */
export class SharedRetryBudget implements RetryBudget {
  private readonly big: BigInt64Array

  constructor (private readonly table: SharedTable, private readonly key: string, private readonly now: () => number) {
    this.big = new BigInt64Array(table.words.buffer, table.words.byteOffset, table.words.length >> 1)
  }

  deposit (): void {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return
    Atomics.add(this.table.words, this.bucket(base, t) + DEPOSITS, 1)
  }

  /**
   * The milliseconds the retry waits for its turn (0: now), or null: none left. A full
   * table: no budget can be kept, so no retry is sent (no extra load).
   */
  withdraw (): number | null {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return null
    const w = this.table.words
    const b = this.bucket(base, t)
    if (this.takeFloor(base, t, 0) !== null) {
      Atomics.add(w, b + FLOOR_RETRIES, 1)
      return 0
    }
    if (this.takeRatio(base, b, t, true)) return 0
    const waitUs = this.takeFloor(base, t, FLOOR_INTERVAL_US)
    if (waitUs !== null) {
      Atomics.add(w, b + FLOOR_RETRIES, 1)
      return Math.ceil(waitUs / 1000)
    }
    return this.takeRatio(base, b, t, false) ? 0 : null
  }

  /** One ratio retry, if the window keeps its reserve after it when `keepReserve` (added first, taken back when over). */
  private takeRatio (base: number, b: number, nowMs: number, keepReserve: boolean): boolean {
    const w = this.table.words
    Atomics.add(w, b + RATIO_RETRIES, 1)
    const c = sum(w, base, second(nowMs))
    const ratio = RETRY_BUDGET.ratio * c.requests
    const reserve = keepReserve ? Math.max(RETRY_BUDGET.minPerSecond, ratio / 2) : 0
    if (c.ratioRetries + reserve < ratio) return true
    Atomics.sub(w, b + RATIO_RETRIES, 1)
    return false
  }

  /** The window's counts now (for /debug/config). */
  counts (): BudgetCounts {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return { requests: 0, retries: 0, allowed: 0 }
    const c = sum(this.table.words, base, second(t))
    return {
      requests: c.requests,
      retries: c.ratioRetries + c.floorRetries,
      allowed: ratioAllowed(c.requests) + RETRY_BUDGET.minPerSecond * RETRY_BUDGET.windowSeconds
    }
  }

  /**
   * The floor's next turn if it is due within `aheadUs`: the µs until it (0: now), and
   * the turn after it one interval later; null: not that soon. A turn past is taken now
   * (and not made up: the next comes one interval after it).
   */
  private takeFloor (base: number, nowMs: number, aheadUs: number): number | null {
    const i = base >> 1
    const now = Math.floor(nowMs * 1000)
    for (;;) {
      const held = Atomics.load(this.big, i)
      const due = Math.max(Number(held), now)
      if (due - now > aheadUs) return null
      if (Atomics.compareExchange(this.big, i, held, BigInt(due + FLOOR_INTERVAL_US)) === held) return due - now
    }
  }

  /** The word index of the current second's bucket, reset if it held an older second. */
  private bucket (base: number, nowMs: number): number {
    const w = this.table.words
    const s = second(nowMs)
    const b = base + FLOOR_WORDS + mod(s, RETRY_BUDGET.windowSeconds) * BUCKET_WORDS
    const held = Atomics.load(w, b + SECOND)
    if (held !== s && Atomics.compareExchange(w, b + SECOND, held, s) === held) {
      Atomics.store(w, b + DEPOSITS, 0)
      Atomics.store(w, b + RATIO_RETRIES, 0)
      Atomics.store(w, b + FLOOR_RETRIES, 0)
    }
    return b
  }
}

function sum (w: Int32Array, base: number, s: number): { requests: number, ratioRetries: number, floorRetries: number } {
  let requests = 0
  let ratioRetries = 0
  let floorRetries = 0
  for (let i = 0; i < RETRY_BUDGET.windowSeconds; i++) {
    const b = base + FLOOR_WORDS + i * BUCKET_WORDS
    const age = (s - Atomics.load(w, b + SECOND)) | 0
    if (age < 0 || age >= RETRY_BUDGET.windowSeconds) continue
    requests += Atomics.load(w, b + DEPOSITS)
    ratioRetries += Atomics.load(w, b + RATIO_RETRIES)
    floorRetries += Atomics.load(w, b + FLOOR_RETRIES)
  }
  return { requests, ratioRetries, floorRetries }
}

/** Ratio retries `requests` allow: the most that stay under ratio × requests. */
const ratioAllowed = (requests: number): number => Math.max(0, Math.ceil(RETRY_BUDGET.ratio * requests) - 1)

const mod = (a: number, n: number): number => ((a % n) + n) % n

/** Whole seconds (32-bit; only equality and small differences are used). */
function second (nowMs: number): number { return Math.floor(nowMs / 1000) | 0 }
