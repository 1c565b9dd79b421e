// Pure helpers over measurements: percentiles of latency samples and parsing of the
// load generator's output. No I/O, so test/benchmarks covers them.

/** The p-th percentile (0 < p ≤ 100) of sorted samples, nearest-rank; NaN when empty. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

export interface LatencySummary {
  readonly count: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

/** Latency percentiles (ms) of microsecond samples. */
export function summarizeMicros (micros: Float64Array | number[]): LatencySummary {
  const s = Float64Array.from(micros).sort()
  const ms = (us: number): number => us / 1000
  return { count: s.length, p50Ms: ms(percentile(s, 50)), p99Ms: ms(percentile(s, 99)), p999Ms: ms(percentile(s, 99.9)), maxMs: ms(s.length === 0 ? NaN : s[s.length - 1]) }
}

/**
 * h2load --log-file lines: "<start µs since epoch>\t<status>\t<µs to end of response>".
 * Returns the latencies of 2xx answers and the count of the others.
 */
export function parseH2loadLog (text: string): { latenciesUs: Float64Array, non2xx: number } {
  const lines = text.split('\n')
  const out = new Float64Array(lines.length)
  let n = 0
  let bad = 0
  for (const line of lines) {
    if (line === '') continue
    const a = line.indexOf('\t')
    const b = line.indexOf('\t', a + 1)
    const status = Number(line.slice(a + 1, b))
    if (status >= 200 && status < 300) out[n++] = Number(line.slice(b + 1))
    else bad++
  }
  return { latenciesUs: out.subarray(0, n), non2xx: bad }
}

export interface H2loadSummary {
  readonly seconds: number
  readonly reqPerSec: number
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly errored: number
  readonly timeout: number
}

/** h2load's summary ("finished in 3.00s, 62429.67 req/s, …" and "requests: …"). */
export function parseH2loadSummary (text: string): H2loadSummary {
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(text)
  const req = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text)
  if (fin === null || req === null) throw new Error(`unexpected h2load output: ${text.slice(-500)}`)
  return {
    seconds: Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1),
    reqPerSec: Number(fin[3]),
    total: Number(req[1]),
    succeeded: Number(req[2]),
    failed: Number(req[3]),
    errored: Number(req[4]),
    timeout: Number(req[5])
  }
}

/** The median of the finite values (the mean of the middle two for an even count); NaN when there are none. */
export function median (values: ReadonlyArray<number | null | undefined>): number {
  const s = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/**
 * The field-by-field median of records of one shape (each run's figures for one path):
 * numbers become the median over the records that have them, nested objects the same,
 * anything else (strings, null where no record has a number) is taken from the first.
 * The result is a summary — its figures may come from different runs — not a run.
 */
export function medianRecord<T> (records: readonly T[]): T {
  if (records.length === 0) throw new Error('medianRecord of no records')
  const first = records[0] as unknown
  if (typeof first === 'number' || first === null) {
    const m = median(records as ReadonlyArray<number | null>)
    return (Number.isNaN(m) && records.every((r) => r === null) ? null : m) as T
  }
  if (typeof first !== 'object' || Array.isArray(first)) return records[0]
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(first as object)) {
    out[key] = medianRecord(records.map((r) => (r as Record<string, unknown>)[key]))
  }
  return out as T
}
