// Durations as the route kinds write them: Gateway API's (GEP-2257: "1h", "30m", "10s",
// "500ms", combinations like "1m30s"; at most 4 units) and Istio's protobuf Duration
// strings ("1.5s", "0.250s", "10ms"). Parsed once at compile time; null for "0s" where a
// zero means "no timeout".

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({ h: 3_600_000, m: 60_000, s: 1000, ms: 1 })
const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y

/** Milliseconds of `text`, or NaN when it is not a duration. */
export function durationMs (text: string): number {
  if (text === '') return NaN
  PART.lastIndex = 0
  let total = 0
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex
    const m = PART.exec(text)
    if (m === null || m.index !== at) return NaN
    total += Number(m[1]) * UNIT_MS[m[2]]
  }
  return Math.round(total)
}

/** A timeout: absent or zero → null (none); otherwise its milliseconds. Invalid text is refused earlier (src/resources/), here it counts as none. */
export function timeoutMs (text: string | undefined): number | null {
  if (text === undefined) return null
  const ms = durationMs(text)
  return Number.isNaN(ms) || ms <= 0 ? null : ms
}
