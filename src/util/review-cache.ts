import { createHash } from 'node:crypto'

// The answers of API-server reviews (TokenReview, SubjectAccessReview) for bearer tokens
// that callers present, kept so that a caller is not reviewed on every request, and
// bounded so that callers with made-up tokens cannot turn us into a load generator for
// the API server or grow our memory:
//   - keyed by the token's SHA-256 (never the token itself);
//   - accepted answers kept `positiveTtlMs`, refused ones `negativeTtlMs`;
//   - at most `maxEntries`: an insert into a full cache drops the oldest entry — O(1),
//     whatever the cache holds (a Map keeps insertion order); expired entries go when read;
//   - one review at a time per token: concurrent callers with the same token share it;
//   - reviews of tokens not in the cache are rate-limited (a token bucket of `ratePerSecond`,
//     `burst`): over the limit the caller is told to come back later, and no review is made.
// A review that fails (the API server is down) is not cached: the next call tries again.

export interface ReviewCacheOptions {
  readonly positiveTtlMs: number
  readonly negativeTtlMs: number
  readonly maxEntries: number
  /** Reviews of uncached tokens per second, on average … */
  readonly ratePerSecond: number
  /** … and at most this many at once. */
  readonly burst: number
  readonly now: () => number
}

/** What a review decided; `ok` picks the time it is kept. */
export interface Judged { readonly ok: boolean }

export type ReviewOutcome<R> = { readonly answer: R } | { readonly limited: true }

interface Entry<R> { readonly answer: R, readonly until: number }

export class ReviewCache<R extends Judged> {
  private readonly entries = new Map<string, Entry<R>>()
  private readonly inFlight = new Map<string, Promise<R>>()
  private tokens: number
  private refilledAt: number
  /** Reviews made (cache misses that were not limited); tests and metrics read it. */
  reviews = 0
  /** Misses refused by the rate limit. */
  limited = 0

  constructor (private readonly opts: ReviewCacheOptions) {
    this.tokens = opts.burst
    this.refilledAt = opts.now()
  }

  get size (): number { return this.entries.size }

  /** The cached answer for `token`, or `review(token)` made now (shared, rate-limited). Throws what `review` throws. */
  async get (token: string, review: (token: string) => Promise<R>): Promise<ReviewOutcome<R>> {
    const key = createHash('sha256').update(token).digest('hex')
    const now = this.opts.now()
    const hit = this.entries.get(key)
    if (hit !== undefined) {
      if (hit.until > now) return { answer: hit.answer }
      this.entries.delete(key)
    }
    const pending = this.inFlight.get(key)
    if (pending !== undefined) return { answer: await pending }
    if (!this.take(now)) { this.limited++; return { limited: true } }
    this.reviews++
    const made = review(token)
    this.inFlight.set(key, made)
    try {
      const answer = await made
      this.remember(key, answer)
      return { answer }
    } finally {
      this.inFlight.delete(key)
    }
  }

  clear (): void { this.entries.clear() }

  private take (now: number): boolean {
    const elapsed = Math.max(0, now - this.refilledAt)
    this.tokens = Math.min(this.opts.burst, this.tokens + elapsed * this.opts.ratePerSecond / 1000)
    this.refilledAt = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  private remember (key: string, answer: R): void {
    const ttl = answer.ok ? this.opts.positiveTtlMs : this.opts.negativeTtlMs
    if (this.entries.size >= this.opts.maxEntries) this.entries.delete(this.entries.keys().next().value as string)
    this.entries.set(key, { answer, until: this.opts.now() + ttl })
  }
}
