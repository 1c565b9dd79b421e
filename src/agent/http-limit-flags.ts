import { ferryError, isFerryError } from '../errors'
import { HTTP_LIMIT_DEFAULTS, HTTP_LIMIT_MAX, resolveHttpLimits, type HttpLimits } from '../http/options'
import { formatDuration, parseDuration } from '../identity/duration'

// `ferry agent`'s flags for the L7 engine's limits (src/http/options.ts): one flag per
// limit, counts as positive integers, times as durations. Parsed once here, then checked
// by the engine's own validation, so the flags and the engine accept the same values.

type Kind = 'count' | 'duration'

/** Each limit's flag (without the leading "--"), its kind and what it bounds (for the usage text). */
export const HTTP_LIMIT_FLAGS: Readonly<Record<keyof HttpLimits, { readonly flag: string, readonly kind: Kind, readonly what: string }>> = Object.freeze({
  maxHeaderBytes: { flag: 'http-max-header-bytes', kind: 'count', what: 'request line and headers, bytes (431)' },
  maxHeaders: { flag: 'http-max-headers', kind: 'count', what: 'header fields per request (431)' },
  headerTimeoutMs: { flag: 'http-header-timeout', kind: 'duration', what: 'time for a request\'s headers once begun (408; HTTP/2: GOAWAY)' },
  idleTimeoutMs: { flag: 'http-idle-timeout', kind: 'duration', what: 'a client connection with no request in flight is closed after it' },
  maxConcurrentStreams: { flag: 'http-max-concurrent-streams', kind: 'count', what: 'HTTP/2 streams a client may have open at once' },
  maxResetsPerSecond: { flag: 'http-max-resets-per-second', kind: 'count', what: 'HTTP/2 streams a client may reset per second (rapid reset)' },
  maxRefusedStreams: { flag: 'http-max-refused-streams', kind: 'count', what: 'HTTP/2 streams refused over the concurrency limit before GOAWAY' },
  upstreamIdleTimeoutMs: { flag: 'http-upstream-idle-timeout', kind: 'duration', what: 'a pooled upstream connection idle this long is closed' }
})

const ENTRIES = Object.entries(HTTP_LIMIT_FLAGS) as Array<[keyof HttpLimits, { flag: string, kind: Kind, what: string }]>
const COUNT = /^[0-9]+$/

/** The flags' specs for parseCommandOptions. */
export function httpLimitFlagSpecs (): Record<string, { type: 'string' }> {
  return Object.fromEntries(ENTRIES.map(([, f]) => [f.flag, { type: 'string' as const }]))
}

/** The usage lines: each flag, its default and what it bounds. */
export function httpLimitUsage (): string {
  return ENTRIES.map(([key, f]) => {
    const def = f.kind === 'duration' ? formatDuration(HTTP_LIMIT_DEFAULTS[key]) : String(HTTP_LIMIT_DEFAULTS[key])
    return `  --${f.flag} ${def}\n                    ${f.what}`
  }).join('\n')
}

/** The limits from parsed flag values (absent: the default). Throws FERRY_ERR_INVALID_ARG naming the flag. */
export function httpLimitsFromFlags (values: Readonly<Record<string, unknown>>): HttpLimits {
  const given: Partial<Record<keyof HttpLimits, number>> = {}
  for (const [key, f] of ENTRIES) {
    const text = values[f.flag]
    if (text === undefined) continue
    const what = `ferry agent: --${f.flag}`
    if (typeof text !== 'string') throw ferryError('FERRY_ERR_INVALID_ARG', `${what} needs a value`)
    if (f.kind === 'duration') {
      given[key] = parseDuration(text, what, { minMs: 1, maxMs: HTTP_LIMIT_MAX })
      continue
    }
    const n = COUNT.test(text.trim()) ? Number(text.trim()) : NaN
    if (!Number.isSafeInteger(n) || n < 1 || n > HTTP_LIMIT_MAX) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${text}" is invalid: expected an integer from 1 to ${HTTP_LIMIT_MAX}`)
    }
    given[key] = n
  }
  try {
    return resolveHttpLimits(given)
  } catch (err) {
    if (!isFerryError(err)) throw err
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: HTTP limits: ${err.message}`, { cause: err })
  }
}
