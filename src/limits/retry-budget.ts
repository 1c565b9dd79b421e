import type { SharedTable } from './shared-table'
import type { RetryBudget } from './types'

// Linkerd's retry budget, node-wide: over the last WINDOW seconds, retries may be at most
// RATIO of the original requests plus MIN_PER_SECOND per second of the window
// (retries ≤ 0.2 × requests + 10/s over 10 s), whatever a route's `attempts` say, so a
// failing backend sees at most ~1.2 × its callers' requests (+ the floor) and never a
// retry storm.
//
// The counts live in one slot of a shared table (shared-table.ts) per backend: WINDOW
// buckets of one second, each [second, deposits, withdrawals], updated with Atomics by
// every worker. A bucket whose second is past is reset by the first thread that needs it
// (compare-and-swap on its second, then its counts zeroed); a count racing that reset
// may be lost — one request among the second's, in either direction.
//
// A withdrawal adds itself first and then checks the window, taking itself back when
// over: concurrent workers can only refuse too much, never allow too much.

export const RETRY_BUDGET = Object.freeze({ ratio: 0.2, minPerSecond: 10, windowSeconds: 10 })

const BUCKET_WORDS = 3
const SECOND = 0
const DEPOSITS = 1
const WITHDRAWALS = 2

/** Payload words of one budget's slot. */
export const BUDGET_WORDS = RETRY_BUDGET.windowSeconds * BUCKET_WORDS

export interface BudgetCounts {
  /** Original requests over the window. */
  readonly requests: number
  /** Retries taken over the window. */
  readonly retries: number
  /** Retries the window allows now (ratio × requests + floor). */
  readonly allowed: number
}

/** One backend's budget, through `table`'s slot for `key`. */
export class SharedRetryBudget implements RetryBudget {
  constructor (private readonly table: SharedTable, private readonly key: string, private readonly now: () => number) {}

  deposit (): void {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return
    const b = this.bucket(base, t)
    Atomics.add(this.table.words, b + DEPOSITS, 1)
  }

  /** Full table: no budget can be kept, so no retry is sent (no extra load). */
  withdraw (): boolean {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return false
    const w = this.table.words
    const b = this.bucket(base, t)
    Atomics.add(w, b + WITHDRAWALS, 1)
    const c = sum(w, base, second(t))
    if (c.retries <= c.allowed) return true
    Atomics.sub(w, b + WITHDRAWALS, 1)
    return false
  }

  /** The window's counts now (for /debug/config). */
  counts (): BudgetCounts {
    const t = this.now()
    const base = this.table.find(this.key, t)
    if (base < 0) return { requests: 0, retries: 0, allowed: 0 }
    return sum(this.table.words, base, second(t))
  }

  /** The word index of the current second's bucket, reset if it held an older second. */
  private bucket (base: number, nowMs: number): number {
    const w = this.table.words
    const s = second(nowMs)
    const b = base + (((s % RETRY_BUDGET.windowSeconds) + RETRY_BUDGET.windowSeconds) % RETRY_BUDGET.windowSeconds) * BUCKET_WORDS
    const held = Atomics.load(w, b + SECOND)
    if (held !== s && Atomics.compareExchange(w, b + SECOND, held, s) === held) {
      Atomics.store(w, b + DEPOSITS, 0)
      Atomics.store(w, b + WITHDRAWALS, 0)
    }
    return b
  }
}

function sum (w: Int32Array, base: number, s: number): BudgetCounts {
  let requests = 0
  let retries = 0
  for (let i = 0; i < RETRY_BUDGET.windowSeconds; i++) {
    const b = base + i * BUCKET_WORDS
    const age = (s - Atomics.load(w, b + SECOND)) | 0
    if (age < 0 || age >= RETRY_BUDGET.windowSeconds) continue
    requests += Atomics.load(w, b + DEPOSITS)
    retries += Atomics.load(w, b + WITHDRAWALS)
  }
  const allowed = Math.floor(RETRY_BUDGET.ratio * requests + RETRY_BUDGET.minPerSecond * RETRY_BUDGET.windowSeconds)
  return { requests, retries, allowed }
}

/** Whole seconds (32-bit; only equality and small differences are used). */
function second (nowMs: number): number { return Math.floor(nowMs / 1000) | 0 }
