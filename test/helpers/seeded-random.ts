// A seeded source of uniform numbers in [0, 1) (mulberry32), so that statistical tests
// of the balancers see the same draws on every run.

export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A clock tests move by hand. */
export class FakeClock {
  ms = 1_000
  readonly now = (): number => this.ms
  advance (ms: number): void { this.ms += ms }
}
