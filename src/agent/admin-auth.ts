import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import type { AccessReviewer } from '../kubernetes/access-review'
import { ReviewCache } from '../util/review-cache'
import type { TokenReviewer } from '../kubernetes/token-review'

// Who may read the agent's /debug/* endpoints (the configuration in force, the node's
// pods, live policy decisions). Not "whoever reaches the port": the admin server listens
// in the node's network namespace, which hostNetwork pods share, and other nodes'
// workloads reach it through the node's address. A caller presents a bearer token
// ("authorization: Bearer <token>") and is let in when either
//   - it is the token in --admin-token-file (a secret only root on the node reads: the
//     lab writes one per lab; `ferry policy check --lab` sends it), compared in constant
//     time, the file re-read when it changes; or
//   - with --kubernetes, the API server's TokenReview authenticates it and a
//     SubjectAccessReview allows that user `get` on `agents/debug` (group ferry.dev)
//     named after this node — RBAC decides (daemonset/base/rbac-debug.yaml's ClusterRole
//     ferry-debug). Answers are cached per token digest and reviews of unknown tokens are
//     rate-limited (src/util/review-cache.ts), so made-up tokens cost the API server
//     a bounded number of reviews.
// /metrics and the readiness port stay open: scrapers and the kubelet carry no credentials.

export type AdminAuthResult =
  | { readonly ok: true, readonly who: string }
  /** 401: no or unknown credential; 403: known but not allowed; 429: too many unknown tokens now; 503: could not be checked. */
  | { readonly ok: false, readonly status: 401 | 403 | 429 | 503, readonly reason: string }

export interface AdminAuth {
  /** "token-file", "kubernetes": what is accepted, for logs and errors. */
  readonly schemes: readonly string[]
  check (authorization: string | undefined): Promise<AdminAuthResult>
}

export const ADMIN_AUTH_DEFAULTS = Object.freeze({
  positiveTtlMs: 60_000,
  negativeTtlMs: 10_000,
  maxEntries: 1000,
  reviewsPerSecond: 5,
  reviewBurst: 20
})

export interface KubernetesReviewers {
  readonly review: TokenReviewer
  readonly access: AccessReviewer
}

export interface AdminAuthOptions {
  /** --admin-token-file; null: no static token. */
  readonly tokenFile: string | null
  /** With --kubernetes: the reviewers (made on first use); null otherwise. */
  readonly kubernetes: (() => Promise<KubernetesReviewers>) | null
  readonly node: string
  readonly now?: () => number
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/

export function createAdminAuth (opts: AdminAuthOptions): AdminAuth {
  const schemes = [...(opts.tokenFile === null ? [] : ['token-file']), ...(opts.kubernetes === null ? [] : ['kubernetes'])]
  const staticToken = opts.tokenFile === null ? null : tokenFileReader(opts.tokenFile)
  const viaKubernetes = opts.kubernetes === null ? null : kubernetesCheck(opts.kubernetes, opts.node, opts.now ?? Date.now)
  return {
    schemes,
    async check (authorization) {
      if (schemes.length === 0) return { ok: false, status: 403, reason: 'the debug endpoints are closed on this agent: start it with --admin-token-file, or --kubernetes to let RBAC decide' }
      if (authorization === undefined) return { ok: false, status: 401, reason: `a bearer token is required (${schemes.join(' or ')})` }
      const token = BEARER.exec(authorization)?.[1]
      if (token === undefined) return { ok: false, status: 401, reason: 'the authorization header is not a bearer token' }
      if (staticToken?.matches(token) === true) return { ok: true, who: 'admin-token-file' }
      if (viaKubernetes !== null) return await viaKubernetes(token)
      return { ok: false, status: 401, reason: 'unknown token' }
    }
  }
}

/** The token of a file, re-read when the file changes; compared by digest in constant time. */
function tokenFileReader (path: string): { matches: (token: string) => boolean } {
  let seen = ''
  let digest: Buffer | null = null
  const current = (): Buffer | null => {
    try {
      const st = statSync(path)
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`
      if (stamp !== seen) {
        const text = readFileSync(path, 'utf8').trim()
        digest = text === '' ? null : sha256(text)
        seen = stamp
      }
    } catch {
      digest = null
      seen = ''
    }
    return digest
  }
  return { matches: (token) => { const d = current(); return d !== null && timingSafeEqual(d, sha256(token)) } }
}

function sha256 (text: string): Buffer { return createHash('sha256').update(text).digest() }

type Decision = AdminAuthResult & { readonly ok: boolean }

function kubernetesCheck (reviewers: () => Promise<KubernetesReviewers>, node: string, now: () => number): (token: string) => Promise<AdminAuthResult> {
  let made: Promise<KubernetesReviewers> | null = null
  const cache = new ReviewCache<Decision>({
    positiveTtlMs: ADMIN_AUTH_DEFAULTS.positiveTtlMs,
    negativeTtlMs: ADMIN_AUTH_DEFAULTS.negativeTtlMs,
    maxEntries: ADMIN_AUTH_DEFAULTS.maxEntries,
    ratePerSecond: ADMIN_AUTH_DEFAULTS.reviewsPerSecond,
    burst: ADMIN_AUTH_DEFAULTS.reviewBurst,
    now
  })
  const decide = async (token: string): Promise<Decision> => {
    made ??= reviewers()
    const { review, access } = await made
    const who = await review(token, [])
    if (who.authenticated !== true || who.user === undefined) return { ok: false, status: 401, reason: `TokenReview: not authenticated${who.error === undefined || who.error === '' ? '' : ` (${who.error})`}` }
    const user = who.user.username ?? '?'
    const allowed = await access(who.user, node)
    if (allowed.allowed !== true) return { ok: false, status: 403, reason: `${user} may not get agents/debug (ferry.dev) of node ${node}${allowed.reason === undefined || allowed.reason === '' ? '' : `: ${allowed.reason}`}` }
    return { ok: true, who: user }
  }
  return async (token) => {
    try {
      const outcome = await cache.get(token, decide)
      if ('limited' in outcome) return { ok: false, status: 429, reason: 'too many unknown tokens to review right now; retry later' }
      return outcome.answer
    } catch (err) {
      made = null // a client that failed to load is made again next time
      return { ok: false, status: 503, reason: `the token could not be checked: ${(err as Error).message}` }
    }
  }
}
