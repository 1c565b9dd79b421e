import { ferryError } from '../errors'

// Durations on the command line and in settings, parsed once at the edge into
// milliseconds. One grammar for every option of every command:
//   - Go's notation, as Kubernetes and Istio write durations: one or more parts, each a
//     number and a unit (ms, s, m, h, d): "24h", "90m", "1h30m", "500ms", "1.5s";
//   - a bare number is seconds: "30", "0.5" (what `ferry lab` has always taken).
// White space around the text is ignored; the result is rounded to the millisecond.
// Bounds belong to the option: pass them as `range`, and the error says them.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const NUMBER = '\\d+(?:\\.\\d+)?'
const UNITS = 'ms|s|m|h|d'
const DURATION = new RegExp(`^(?:(?:${NUMBER}(?:${UNITS}))+|${NUMBER})$`)
const PART = new RegExp(`(${NUMBER})(${UNITS})`, 'g')
/** Longest duration text read ("365d" is 4 characters; "1d23h59m59s999ms" 16). */
const MAX_TEXT = 64
const HOUR_MS = UNIT_MS.h
const DAY_MS = UNIT_MS.d

/** Inclusive bounds of a duration option, in milliseconds. */
export interface DurationRange {
  readonly minMs?: number
  readonly maxMs?: number
}

/**
 * Milliseconds in `text`, or FERRY_ERR_INVALID_ARG naming `what` (e.g. "ferry agent:
 * --cert-ttl"): for text outside the grammar, and for a duration outside `range`.
 */
export function parseDuration (text: string, what: string, range: DurationRange = {}): number {
  const trimmed = typeof text === 'string' ? text.trim() : ''
  // Bounded before any regular expression runs: the search for parts is quadratic in the
  // length of a long run of digits, and no duration needs more than a few dozen characters.
  if (trimmed.length > MAX_TEXT || !DURATION.test(trimmed)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${String(text)}" is invalid: expected a duration such as 24h, 30m, 45s, 1h30m, 500ms or 30 (seconds)`)
  }
  const parts = [...trimmed.matchAll(PART)]
  const exact = parts.length === 0 ? Number(trimmed) * UNIT_MS.s : parts.reduce((sum, m) => sum + Number(m[1]) * UNIT_MS[m[2]], 0)
  const ms = Math.round(exact)
  if (!Number.isSafeInteger(ms)) throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${text}" is too large`)
  const { minMs = 0, maxMs = Infinity } = range
  if (ms < minMs || ms > maxMs) throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${text}" is invalid: expected ${describeRange(minMs, maxMs)}`)
  return ms
}

/**
 * A duration for people, logs and other commands' argv, in the grammar above: "24h",
 * "1h30m", "2s", "1500ms"; 48 hours and more in days: "365d", "3d12h".
 */
export function formatDuration (ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`
  let s = ms / 1000
  const d = ms >= 2 * DAY_MS ? Math.floor(ms / DAY_MS) : 0; s -= d * DAY_MS / 1000
  const h = Math.floor(s / (HOUR_MS / 1000)); s -= h * 3600
  const m = Math.floor(s / 60); s -= m * 60
  const out = `${d > 0 ? `${d}d` : ''}${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`
  return out === '' ? '0s' : out
}

function describeRange (minMs: number, maxMs: number): string {
  if (maxMs === Infinity) return `a duration of at least ${formatDuration(minMs)}`
  if (minMs <= 0) return `a duration up to ${formatDuration(maxMs)}`
  return `a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`
}
