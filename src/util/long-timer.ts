// A timer for any delay, including ones past Node's limit. setTimeout takes at most
// 2^31 − 1 ms (≈ 24.8 days): a longer delay is replaced by 1 ms with a
// TimeoutOverflowWarning, so a 30-day certificate's expiry or renewal timer would fire at
// once and, re-armed from its callback, spin. setLongTimer arms the real timer for at
// most MAX_TIMER_MS at a time and re-arms it for what is left until the whole delay has
// passed: a 60-day delay is three timers, never a loop.
//
// Every long-lived timer of the code base (certificate renewal and expiry through
// identity/clock.ts, a tunnel session's certificate expiry) goes through this one helper.
// The primitive timer functions are injected for tests (count the re-arms, advance time
// by hand); production uses Node's, unref'd so a timer never keeps the process alive.

/** The longest delay setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** The timer primitives setLongTimer builds on. */
export interface TimerFunctions {
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const NODE_TIMERS: TimerFunctions = Object.freeze({
  setTimeout: (fn: () => void, ms: number): unknown => {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout: (handle: unknown): void => { clearTimeout(handle as NodeJS.Timeout) }
})

export interface LongTimer {
  /** Cancels the timer (idempotent); `fn` will not run. */
  clear: () => void
}

/** Runs `fn` once, `ms` from now (negative or NaN: as soon as possible). */
export function setLongTimer (fn: () => void, ms: number, timers: TimerFunctions = NODE_TIMERS): LongTimer {
  let left = Number.isFinite(ms) ? Math.max(0, Math.ceil(ms)) : 0
  let handle: unknown = null
  let cleared = false
  const arm = (): void => {
    const step = Math.min(left, MAX_TIMER_MS)
    left -= step
    handle = timers.setTimeout(() => {
      handle = null
      if (cleared) return
      if (left > 0) arm()
      else fn()
    }, step)
  }
  arm()
  return {
    clear: () => {
      cleared = true
      if (handle !== null) timers.clearTimeout(handle)
      handle = null
    }
  }
}
