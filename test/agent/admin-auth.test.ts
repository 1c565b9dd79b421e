import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ADMIN_AUTH_DEFAULTS, createAdminAuth } from '../../src/agent/admin-auth'
import { DEBUG_ACCESS, kubernetesAccessReviewer } from '../../src/kubernetes/access-review'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { kubernetesTokenReviewer } from '../../src/kubernetes/token-review'
import { FakeKubeApi, grantKey } from '../helpers/kube-api'

// Who may read an agent's /debug/* on a cluster: the official client's TokenReview and
// SubjectAccessReview against test/helpers/kube-api.ts (a local stand-in for the API
// server's two review endpoints, not Kubernetes: it answers the reviews the test set up,
// and "RBAC" is the test's grant list). The agent asks for `get` on agents/debug in group
// ferry.dev, named after its node; a hostNetwork pod's service account has no such grant.

t.before(async () => { await loadKubernetesClient() })

const USER = (name: string): Record<string, unknown> => ({ authenticated: true, user: { username: name, uid: `uid-${name}`, groups: ['system:authenticated'] }, audiences: ['https://kubernetes.default.svc'] })

async function setup (t: Test, tokenFile: string | null = null): Promise<{ api: FakeKubeApi, auth: ReturnType<typeof createAdminAuth>, clock: { t: number } }> {
  const api = new FakeKubeApi()
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  api.reviews.set('alice-token', USER('alice'))
  api.reviews.set('pod-token', USER('system:serviceaccount:tools:host-network-pod'))
  api.grants.set('alice', new Set([grantKey({ ...DEBUG_ACCESS, name: 'n1' })]))
  const clock = { t: 1_000_000 }
  const auth = createAdminAuth({
    tokenFile,
    node: 'n1',
    now: () => clock.t,
    kubernetes: async () => ({ review: await kubernetesTokenReviewer({ server: url }), access: await kubernetesAccessReviewer({ server: url }) })
  })
  return { api, auth, clock }
}

t.test('TokenReview then SubjectAccessReview: RBAC decides, per node; answers cached', async (t) => {
  const { api, auth, clock } = await setup(t)
  t.same(auth.schemes, ['kubernetes'])
  t.same(await auth.check('Bearer alice-token'), { ok: true, who: 'alice' })
  t.match(api.accessRequests[0], { user: 'alice', uid: 'uid-alice', groups: ['system:authenticated'], resourceAttributes: { group: 'ferry.dev', resource: 'agents', subresource: 'debug', verb: 'get', name: 'n1' } })
  t.match(await auth.check('Bearer pod-token'), { ok: false, status: 403, reason: /system:serviceaccount:tools:host-network-pod may not get agents\/debug \(ferry\.dev\) of node n1/ })
  t.match(await auth.check('Bearer made-up'), { ok: false, status: 401, reason: /TokenReview: not authenticated \(\[invalid bearer token, token lookup failed\]\)/ })
  t.match(await auth.check(undefined), { ok: false, status: 401, reason: /a bearer token is required \(kubernetes\)/ })
  const reviews = api.reviewRequests.length
  await auth.check('Bearer alice-token')
  await auth.check('Bearer pod-token')
  t.equal(api.reviewRequests.length, reviews, 'answered from the cache')
  clock.t += ADMIN_AUTH_DEFAULTS.positiveTtlMs + 1
  await auth.check('Bearer alice-token')
  t.equal(api.reviewRequests.length, reviews + 1, 'reviewed again once the answer expired')
})

t.test('the API server down: 503, not cached; made-up tokens: a bounded number of reviews, then 429', async (t) => {
  const { api, auth } = await setup(t)
  api.reviewFailure = 503
  t.match(await auth.check('Bearer alice-token'), { ok: false, status: 503, reason: /could not be checked: TokenReview at .* failed: HTTP 503/ })
  api.reviewFailure = null
  t.same(await auth.check('Bearer alice-token'), { ok: true, who: 'alice' }, 'asked again')
  const before = api.reviewRequests.length
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => await auth.check(`Bearer flood-${i}`)))
  t.ok(api.reviewRequests.length - before <= ADMIN_AUTH_DEFAULTS.reviewBurst, `${api.reviewRequests.length - before} reviews for 200 made-up tokens`)
  t.ok(results.filter((r) => !r.ok && r.status === 429).length >= 200 - ADMIN_AUTH_DEFAULTS.reviewBurst, 'the rest refused with 429 without asking')
  t.same(await auth.check('Bearer alice-token'), { ok: true, who: 'alice' }, 'a known caller still gets in during the flood')
})

t.test('with a token file as well: the file\'s token opens it without asking the API server', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-admin-auth-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'admin.token')
  writeFileSync(file, 'node-secret\n')
  const { api, auth } = await setup(t, file)
  t.same(auth.schemes, ['token-file', 'kubernetes'])
  t.same(await auth.check('Bearer node-secret'), { ok: true, who: 'admin-token-file' })
  t.equal(api.reviewRequests.length, 0)
  t.same(await auth.check('Bearer alice-token'), { ok: true, who: 'alice' })
})
