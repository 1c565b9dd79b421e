import type { Clock } from '../identity/clock'
import { ReviewCache } from '../util/review-cache'
import type { TokenReviewer, TokenReviewStatus } from '../kubernetes/token-review'
import type { Logger } from '../telemetry/logger'
import type { Authenticator, AuthnResult } from './authn'

// The Kubernetes Authenticator. The agent presents its projected service-account token
// (audience "ferry-ca", bound to its pod); the controller asks the API server's
// TokenReview about it, for that audience, and accepts it only when:
//   - status.authenticated is true;
//   - status.audiences contains the audience (an API server that ignores spec.audiences
//     answers without it: such a review proves nothing about the audience);
//   - the user is system:serviceaccount:<ferry namespace>:<agent service account>;
//   - user.extra["authentication.kubernetes.io/node-name"] names exactly one node: the
//     node of the pod the token is bound to (Kubernetes 1.30+ puts it there).
// That node is the caller's node, the only one whose pods' identities it may obtain.
//
// Answers are cached by the token's SHA-256 (never the token itself): accepted ones for
// a short while, refused ones for less, in a bounded cache (src/util/review-cache.ts).
// A review that could not be made (the API server is down, or refuses the controller) is
// "unavailable", never cached: the agent retries. Reviews of tokens not in the cache are
// rate-limited: a caller sending made-up tokens gets "unavailable" (retry later) once the
// budget is spent, and the API server is not asked — agents with a cached token are not
// affected, and a real agent's retry gets through once the budget refills.

export const TOKEN_REVIEW_DEFAULTS = Object.freeze({
  audience: 'ferry-ca',
  namespace: 'ferry-system',
  serviceAccount: 'ferry-agent',
  /** An accepted token is trusted this long without asking again (tokens live hours). */
  positiveTtlMs: 60_000,
  /** A refused token is refused this long without asking again. */
  negativeTtlMs: 10_000,
  /** Cache entries kept at most (a node has one token at a time; this bounds a flood of bad ones). */
  maxEntries: 10_000,
  /** Reviews of tokens not in the cache, per second on average; every agent reconnecting after a controller restart is one. */
  reviewsPerSecond: 20,
  /** … and at once. */
  reviewBurst: 100
})

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name'

export interface TokenReviewAuthenticatorOptions {
  readonly review: TokenReviewer
  readonly log: Logger
  readonly clock: Clock
  readonly audience?: string
  /** The agents' service account: system:serviceaccount:<namespace>:<serviceAccount>. */
  readonly namespace?: string
  readonly serviceAccount?: string
  readonly positiveTtlMs?: number
  readonly negativeTtlMs?: number
  readonly reviewsPerSecond?: number
  readonly reviewBurst?: number
}

export class TokenReviewAuthenticator implements Authenticator {
  readonly kind = 'kubernetes-token-review'
  readonly audience: string
  readonly username: string
  private readonly cache: ReviewCache<AuthnResult>

  constructor (private readonly opts: TokenReviewAuthenticatorOptions) {
    this.audience = opts.audience ?? TOKEN_REVIEW_DEFAULTS.audience
    this.username = `system:serviceaccount:${opts.namespace ?? TOKEN_REVIEW_DEFAULTS.namespace}:${opts.serviceAccount ?? TOKEN_REVIEW_DEFAULTS.serviceAccount}`
    this.cache = new ReviewCache({
      positiveTtlMs: opts.positiveTtlMs ?? TOKEN_REVIEW_DEFAULTS.positiveTtlMs,
      negativeTtlMs: opts.negativeTtlMs ?? TOKEN_REVIEW_DEFAULTS.negativeTtlMs,
      maxEntries: TOKEN_REVIEW_DEFAULTS.maxEntries,
      ratePerSecond: opts.reviewsPerSecond ?? TOKEN_REVIEW_DEFAULTS.reviewsPerSecond,
      burst: opts.reviewBurst ?? TOKEN_REVIEW_DEFAULTS.reviewBurst,
      now: () => opts.clock.now()
    })
  }

  /** Reviews made (not answered from the cache, not rate-limited): tests read it. */
  get reviews (): number { return this.cache.reviews }

  async authenticate (token: string | null): Promise<AuthnResult> {
    if (token === null) return { ok: false, reason: 'no bearer token in the "authorization" metadata' }
    let outcome
    try {
      outcome = await this.cache.get(token, async (t) => this.judge(await this.opts.review(t, [this.audience])))
    } catch (err) {
      this.opts.log.warn({ err }, 'TokenReview failed; the caller will retry')
      return { ok: false, unavailable: true, reason: `the token could not be checked: ${(err as Error).message}` }
    }
    if ('limited' in outcome) return { ok: false, unavailable: true, reason: 'too many tokens to review right now; retry later' }
    return outcome.answer
  }

  close (): void { this.cache.clear() }

  private judge (status: TokenReviewStatus): AuthnResult {
    if (status.authenticated !== true) {
      return { ok: false, reason: `TokenReview: not authenticated${status.error === undefined || status.error === '' ? '' : ` (${status.error})`}` }
    }
    if (!(status.audiences ?? []).includes(this.audience)) {
      return { ok: false, reason: `TokenReview: the token is not for audience "${this.audience}" (the review's audiences: ${JSON.stringify(status.audiences ?? [])})` }
    }
    const user = status.user?.username ?? ''
    if (user !== this.username) return { ok: false, reason: `TokenReview: user "${user}" is not the agents' service account ${this.username}` }
    const nodes = status.user?.extra?.[NODE_NAME_EXTRA] ?? []
    if (nodes.length !== 1 || nodes[0] === '') {
      return { ok: false, reason: `TokenReview: the token names ${nodes.length === 0 ? 'no' : 'more than one'} node (${NODE_NAME_EXTRA}); it must be a token bound to the agent's pod (Kubernetes 1.30+)` }
    }
    const pod = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0]
    return { ok: true, caller: Object.freeze({ node: nodes[0], principal: pod === undefined ? user : `${user} (pod ${pod})` }) }
  }
}
