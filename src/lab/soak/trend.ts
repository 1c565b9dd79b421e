// Whether a resource grows over a soak: the least-squares line through its samples (one
// a window, the first left out: it holds the warm-up), and a verdict. A resource shows
// a growth trend when its slope is both significant — above twice its standard error,
// about 95 % confidence that the line really rises — and material — the line rises by
// more than the floor over the run (a few descriptors, a few MiB: what a pod created at
// the moment of a sample, or a garbage collection not yet run, holds). Below three
// samples there is no verdict to give: reported as no trend, with n.

export interface Trend {
  /** Samples judged. */
  readonly n: number
  /** Change per window of the fitted line. */
  readonly slope: number
  /** Standard error of the slope (Infinity below three samples). */
  readonly stdError: number
  /** What the fitted line rises over the samples: slope × (n − 1). */
  readonly rise: number
  /** The rise that counts as material. */
  readonly floor: number
  readonly growing: boolean
}

/** Least-squares slope and its standard error of `ys` against 0, 1, 2, … */
export function linearFit (ys: readonly number[]): { slope: number, stdError: number } {
  const n = ys.length
  if (n < 2) return { slope: 0, stdError: Infinity }
  const mx = (n - 1) / 2
  const my = ys.reduce((a, b) => a + b, 0) / n
  let sxx = 0
  let sxy = 0
  for (let i = 0; i < n; i++) { sxx += (i - mx) ** 2; sxy += (i - mx) * (ys[i] - my) }
  const slope = sxy / sxx
  if (n < 3) return { slope, stdError: Infinity }
  let sse = 0
  for (let i = 0; i < n; i++) sse += (ys[i] - (my + slope * (i - mx))) ** 2
  return { slope, stdError: Math.sqrt(sse / (n - 2) / sxx) }
}

/** The verdict on `samples` (the warm-up window already left out); `floor` is the material rise. */
export function judgeTrend (samples: readonly number[], floor: number): Trend {
  const { slope, stdError } = linearFit(samples)
  const rise = slope * Math.max(0, samples.length - 1)
  return Object.freeze({ n: samples.length, slope, stdError, rise, floor, growing: samples.length >= 3 && slope > 2 * stdError && rise > floor })
}

/** A material rise: `absolute`, or `fraction` of the samples' median when that is more. */
export function floorOf (samples: readonly number[], absolute: number, fraction: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const median = sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)]
  return Math.max(absolute, fraction * median)
}
