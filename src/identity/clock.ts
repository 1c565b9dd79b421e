// Time and randomness, injected wherever a test depends on them (certificate lifetimes,
// renewal schedules, retry backoff). Production code uses systemClock and Math.random.

export type TimerHandle = { readonly __timer: unique symbol }

export interface Clock {
  /** Milliseconds since the epoch. */
  now (): number
  /** Runs `fn` once after `ms`; the timer never keeps the process alive by itself. */
  setTimer (fn: () => void, ms: number): TimerHandle
  clearTimer (handle: TimerHandle): void
}

/** A number in [0, 1). */
export type Random = () => number

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer (fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, Math.max(0, ms))
    t.unref()
    return t as unknown as TimerHandle
  },
  clearTimer (handle: TimerHandle): void {
    clearTimeout(handle as unknown as NodeJS.Timeout)
  }
})
