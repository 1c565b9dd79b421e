import { ferryError } from '../errors'

// Durations on the command line, in Go's notation as Kubernetes and Istio use it:
// "24h", "90m", "30s", "1h30m", "500ms". Parsed once at the edge into milliseconds.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/
const PART = /(\d+)(ms|s|m|h|d)/g

/** Milliseconds in `text`, or FERRY_ERR_INVALID_ARG naming `what` (e.g. "--cert-ttl"). */
export function parseDuration (text: string, what: string): number {
  if (typeof text !== 'string' || !DURATION.test(text)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${String(text)}" is invalid: expected a duration such as 24h, 30m, 45s, 1h30m or 500ms`)
  }
  let ms = 0
  for (const m of text.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]]
  if (!Number.isSafeInteger(ms)) throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${text}" is too large`)
  return ms
}

/** A duration for people and logs: "24h", "1h30m", "2s", "1500ms". */
export function formatDuration (ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`
  let s = ms / 1000
  const h = Math.floor(s / 3600); s -= h * 3600
  const m = Math.floor(s / 60); s -= m * 60
  const out = `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`
  return out === '' ? '0s' : out
}
