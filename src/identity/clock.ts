import { NODE_TIMERS, setLongTimer, type LongTimer, type TimerFunctions } from '../util/long-timer'

// Time and randomness, injected wherever a test depends on them (certificate lifetimes,
// renewal schedules, retry backoff). Production code uses systemClock and Math.random.
//
// Timers go through setLongTimer (src/util/long-timer.ts): a certificate may live longer
// than setTimeout's limit (≈ 24.8 days), and its renewal and expiry timers must neither
// fire early nor spin.

export type TimerHandle = { readonly __timer: unique symbol }

export interface Clock {
  /** Milliseconds since the epoch. */
  now (): number
  /** Runs `fn` once after `ms` (any length); the timer never keeps the process alive by itself. */
  setTimer (fn: () => void, ms: number): TimerHandle
  clearTimer (handle: TimerHandle): void
}

/** A number in [0, 1). */
export type Random = () => number

/** A clock reading `now` and arming timers with `timers` (tests pass their own of both). */
export function createClock (now: () => number, timers: TimerFunctions = NODE_TIMERS): Clock {
  return Object.freeze({
    now,
    setTimer (fn: () => void, ms: number): TimerHandle {
      return setLongTimer(fn, ms, timers) as unknown as TimerHandle
    },
    clearTimer (handle: TimerHandle): void {
      (handle as unknown as LongTimer).clear()
    }
  })
}

export const systemClock: Clock = createClock(() => Date.now())
