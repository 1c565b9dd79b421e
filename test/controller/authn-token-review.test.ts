import t from 'tap'
import { TokenReviewAuthenticator } from '../../src/controller/authn-token-review'
import { ferryError } from '../../src/errors'
import type { Clock } from '../../src/identity/clock'
import type { TokenReviewStatus } from '../../src/kubernetes/token-review'
import { captureLog } from './harness'
import { REVIEWS } from '../helpers/kube-api'

// The TokenReview authenticator's own rules, with the review injected: what it accepts,
// what it refuses and why, and its cache (by token digest, expiring, never caching a
// review that could not be made). Time is a test clock.

function setup (answers: Record<string, TokenReviewStatus | Error>): { authn: TokenReviewAuthenticator, clock: { t: number }, asked: string[] } {
  const clock = { t: 1_000_000 }
  const testClock: Clock = { now: () => clock.t, setTimer: () => { throw new Error('unused') }, clearTimer: () => {} }
  const asked: string[] = []
  const authn = new TokenReviewAuthenticator({
    review: async (token, audiences) => {
      asked.push(`${token}@${audiences.join(',')}`)
      const a = answers[token]
      if (a instanceof Error) throw a
      return a ?? { authenticated: false, error: 'unknown' }
    },
    log: captureLog().log,
    clock: testClock,
    positiveTtlMs: 60_000,
    negativeTtlMs: 10_000
  })
  return { authn, clock, asked }
}

t.test('accepts the agents\' bound token: node from the token, principal names the pod', async (t) => {
  const { authn, asked } = setup({ good: REVIEWS.agentOn('node-7', { pod: 'ferry-agent-abcde' }) as TokenReviewStatus })
  t.same(await authn.authenticate('good'), { ok: true, caller: { node: 'node-7', principal: 'system:serviceaccount:ferry-system:ferry-agent (pod ferry-agent-abcde)' } })
  t.same(asked, ['good@ferry-ca'])
  t.match(await authn.authenticate(null), { ok: false, reason: /no bearer token/ })
})

t.test('refusals, each with its reason', async (t) => {
  const agent = REVIEWS.agentOn('n1') as any
  const { authn } = setup({
    expired: REVIEWS.expired() as TokenReviewStatus,
    audience: { ...agent, audiences: ['other'] },
    user: { ...agent, user: { ...agent.user, username: 'system:serviceaccount:ferry-system:ferry-controller' } },
    twoNodes: { ...agent, user: { ...agent.user, extra: { 'authentication.kubernetes.io/node-name': ['a', 'b'] } } }
  })
  t.match(await authn.authenticate('expired'), { ok: false, reason: /not authenticated \(\[invalid bearer token, service account token has expired\]\)/ })
  t.match(await authn.authenticate('audience'), { ok: false, reason: /not for audience "ferry-ca" \(the review's audiences: \["other"\]\)/ })
  t.match(await authn.authenticate('user'), { ok: false, reason: /user "system:serviceaccount:ferry-system:ferry-controller" is not the agents' service account/ })
  t.match(await authn.authenticate('twoNodes'), { ok: false, reason: /names more than one node/ })
  for (const r of await Promise.all(['expired', 'audience'].map(async (x) => await authn.authenticate(x)))) t.notOk((r as { unavailable?: boolean }).unavailable)
})

t.test('cache: accepted for positiveTtlMs, refused for negativeTtlMs, by digest; unavailable never cached', async (t) => {
  const answers: Record<string, TokenReviewStatus | Error> = { good: REVIEWS.agentOn('n1') as TokenReviewStatus, bad: REVIEWS.expired() as TokenReviewStatus, down: ferryError('FERRY_ERR_KUBE_API', 'TokenReview at https://10.0.0.1 failed: HTTP 503') }
  const { authn, clock, asked } = setup(answers)
  await authn.authenticate('good')
  await authn.authenticate('good')
  t.equal(asked.length, 1, 'answered from the cache')
  clock.t += 60_001
  await authn.authenticate('good')
  t.equal(asked.length, 2, 'asked again after the positive TTL')

  await authn.authenticate('bad')
  clock.t += 9_000
  await authn.authenticate('bad')
  t.equal(asked.length, 3, 'refusal cached')
  clock.t += 1_001
  await authn.authenticate('bad')
  t.equal(asked.length, 4, 'asked again after the negative TTL')

  t.match(await authn.authenticate('down'), { ok: false, unavailable: true, reason: /could not be checked: TokenReview at https:\/\/10\.0\.0\.1 failed: HTTP 503/ })
  answers.down = REVIEWS.agentOn('n2') as TokenReviewStatus
  t.match(await authn.authenticate('down'), { ok: true, caller: { node: 'n2' } }, 'an unavailable review is not remembered')
  t.equal(authn.reviews, 6)
})

t.test('made-up tokens: reviews bounded by the rate budget, the rest "unavailable" without asking the API server; a known agent still gets in', async (t) => {
  const { authn, asked } = setup({ good: REVIEWS.agentOn('n1') as TokenReviewStatus })
  t.match(await authn.authenticate('good'), { ok: true })
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => await authn.authenticate(`made-up-${i}`)))
  t.ok(asked.length <= 100, `${asked.length} reviews for 500 made-up tokens (the burst)`)
  t.ok(results.filter((r) => !r.ok && r.unavailable === true && /too many tokens to review/.test(r.reason)).length >= 400, 'the rest told to retry later')
  t.match(await authn.authenticate('good'), { ok: true }, 'the cached agent is unaffected')
})
