import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { ConfigStream } from '../../src/agent/config-stream'
import { Controller } from '../../src/controller/controller'
import { parseControllerOptions } from '../../src/controller/options'
import { isFerryError } from '../../src/errors'
import { KubernetesPolicyObjects, type PolicyObjects } from '../../src/kubernetes/policy-objects'
import { CaClient } from '../../src/identity/ca-client'
import { createCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { podObj } from '../discovery/fixture'
import { FERRY } from '../helpers/cli'
import { captureLog, tmpDir } from './harness'
import { FakeKubeApi, REVIEWS } from '../helpers/kube-api'
import { waitFor } from '../helpers/wait'

// `ferry controller --kubernetes` against a local stand-in for the API server
// (test/helpers/kube-api.ts; NOT Kubernetes): agents' tokens checked with TokenReview, node
// authorization from the API server's pods (list + watch), and policies from Ferry's
// CRD objects on the configuration stream. Real controller, real grpc-js and TLS.

const PODS = '/api/v1/pods' as const
const FERRY_AP = '/apis/security.ferry.dev/v1alpha1/authorizationpolicies' as const
const FERRY_PA = '/apis/security.ferry.dev/v1alpha1/peerauthentications' as const
const ISTIO_AP = '/apis/security.istio.io/v1/authorizationpolicies' as const
const FERRY_RL = '/apis/security.ferry.dev/v1alpha1/ratelimits' as const
const HTTP_ROUTES = '/apis/gateway.networking.k8s.io/v1/httproutes' as const
const VIRTUAL_SERVICES = '/apis/networking.istio.io/v1/virtualservices' as const
const WEB = spiffeIdOf('cluster.local', 'app', 'web')
const DB = spiffeIdOf('cluster.local', 'data', 'db')

/** An AuthorizationPolicy as the API server returns it: with the fields it writes. */
function apObject (name: string, namespace: string, spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'security.ferry.dev/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: {
      name,
      namespace,
      generation: 1,
      creationTimestamp: '2026-11-26T01:00:00Z',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"security.ferry.dev/v1alpha1"}' },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'security.ferry.dev/v1alpha1', time: '2026-11-26T01:00:00Z', fieldsType: 'FieldsV1', fieldsV1: {} }]
    },
    spec
  }
}

async function setup (t: { teardown: (fn: () => void | Promise<void>) => void }, install: ReadonlyArray<`/${string}`> = []): Promise<{ api: FakeKubeApi, controller: Controller, lines: ReturnType<typeof captureLog>['lines'], client: (token: string) => CaClient }> {
  const api = new FakeKubeApi()
  for (const p of [FERRY_AP, FERRY_PA, FERRY_RL, ISTIO_AP, ...install]) api.install(p)
  api.apply(PODS, podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' }))
  api.apply(PODS, podObj({ name: 'db', namespace: 'data', node: 'n2', serviceAccountName: 'db' }))
  api.apply(FERRY_AP, apObject('deny-dev', 'prod', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['dev'] } }] }] }))
  api.reviews.set('token-n1', REVIEWS.agentOn('n1'))
  api.reviews.set('token-expired', REVIEWS.expired())
  api.reviews.set('token-for-the-api-server', REVIEWS.wrongAudience('https://kubernetes.default.svc.cluster.local', 'ferry-ca'))
  api.reviews.set('token-audience-unaware', { ...REVIEWS.agentOn('n1'), audiences: undefined })
  api.reviews.set('token-other-sa', REVIEWS.agentOn('n1', { user: 'system:serviceaccount:default:builder' }))
  api.reviews.set('token-unbound', { ...REVIEWS.agentOn('n1'), user: { ...REVIEWS.agentOn('n1').user, extra: {} } })
  await api.start()
  t.teardown(async () => { await api.close() })
  const { log, lines } = captureLog()
  const options = parseControllerOptions(['--data-dir', `${tmpDir(t)}/ca`, '--listen', '127.0.0.1:0', '--kubernetes', '--agent-service-account', 'ferry-system:ferry-agent'])
  const controller = await Controller.start(options, { log, kubeconfig: { server: api.url } })
  const clients: CaClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.close()
    await controller.close()
  })
  return {
    api,
    controller,
    lines,
    client: (token) => {
      const c = new CaClient({ address: controller.address, caRootsPem: controller.rootCertPem, token: () => token, callTimeoutMs: 5000 })
      clients.push(c)
      return c
    }
  }
}

async function sign (client: CaClient, uri: string): Promise<{ ok: true } | { ok: false, code: string, message: string }> {
  const csr = await createCsr(await generateWorkloadKey(), { ...WEB, uri })
  try {
    await client.createCertificate(csr, 600)
    return { ok: true }
  } catch (err) {
    if (isFerryError(err)) return { ok: false, code: err.code, message: err.message }
    throw err
  }
}

t.test('TokenReview: the node comes from the bound token; a pod on another node, an expired token, a wrong audience are refused for signing', async (t) => {
  const { api, controller, lines, client } = await setup(t)
  t.same(await sign(client('token-n1'), WEB.uri), { ok: true }, 'n1 gets the identity of its own pod')
  t.same(api.reviewRequests[0], { token: 'token-n1', audiences: ['ferry-ca'] }, 'the review asks for the audience ferry-ca')
  t.ok(lines.some((l) => l.msg === 'certificate issued' && l.node === 'n1' && /system:serviceaccount:ferry-system:ferry-agent \(pod ferry-agent-n1\)/.test(String(l.principal))))

  const otherNode = await sign(client('token-n1'), DB.uri)
  t.match(otherNode, { ok: false, code: 'FERRY_ERR_CA_REFUSED', message: /PERMISSION_DENIED: FERRY_ERR_AUTHZ: node n1 may not obtain spiffe:\/\/cluster\.local\/ns\/data\/sa\/db: .*\(such pods run on n2\)/ })
  t.equal(api.reviewRequests.length, 1, 'the accepted token was cached (by its digest)')

  const expired = await sign(client('token-expired'), WEB.uri)
  t.match(expired, { ok: false, code: 'FERRY_ERR_CA_REFUSED', message: /UNAUTHENTICATED: FERRY_ERR_AUTHN: TokenReview: not authenticated \(\[invalid bearer token, service account token has expired\]\)/ })

  const wrongAudience = await sign(client('token-for-the-api-server'), WEB.uri)
  t.match(wrongAudience, { ok: false, code: 'FERRY_ERR_CA_REFUSED', message: /UNAUTHENTICATED: FERRY_ERR_AUTHN: .*is invalid for the target audiences \["ferry-ca"\]/ })

  const unaware = await sign(client('token-audience-unaware'), WEB.uri)
  t.match(unaware, { ok: false, message: /UNAUTHENTICATED: FERRY_ERR_AUTHN: TokenReview: the token is not for audience "ferry-ca"/ }, 'authenticated but without the audience in status.audiences')

  const otherSa = await sign(client('token-other-sa'), WEB.uri)
  t.match(otherSa, { ok: false, message: /UNAUTHENTICATED: FERRY_ERR_AUTHN: TokenReview: user "system:serviceaccount:default:builder" is not the agents' service account system:serviceaccount:ferry-system:ferry-agent/ })

  const unbound = await sign(client('token-unbound'), WEB.uri)
  t.match(unbound, { ok: false, message: /names no node \(authentication\.kubernetes\.io\/node-name\)/ })

  const unknown = await sign(client('some-random-token'), WEB.uri)
  t.match(unknown, { ok: false, message: /UNAUTHENTICATED: FERRY_ERR_AUTHN: TokenReview: not authenticated \(\[invalid bearer token, token lookup failed\]\)/ })

  const refusals = lines.filter((l) => l.msg === 'certificate request refused')
  t.equal(refusals.length, 7)
  t.ok(refusals.every((l) => typeof l.reason === 'string' && typeof l.code === 'string'))
  void controller
})

t.test('TokenReview unavailable: UNAVAILABLE (retried by the agent), never cached', async (t) => {
  const { api, client } = await setup(t)
  api.reviews.set('token-n1-b', REVIEWS.agentOn('n1'))
  api.reviewFailure = 500
  const down = await sign(client('token-n1-b'), WEB.uri)
  t.match(down, { ok: false, code: 'FERRY_ERR_CA_UNAVAILABLE', message: /UNAVAILABLE: FERRY_ERR_AUTHN_UNAVAILABLE: the token could not be checked: TokenReview at http:\/\/127\.0\.0\.1:\d+ failed: HTTP 500/ })
  api.reviewFailure = null
  t.same(await sign(client('token-n1-b'), WEB.uri), { ok: true }, 'asked again once the API server answers')
})

t.test('node authorization follows the API server\'s pods (watch)', async (t) => {
  const { api, client } = await setup(t)
  t.match(await sign(client('token-n1'), DB.uri), { ok: false, code: 'FERRY_ERR_CA_REFUSED' })
  api.apply(PODS, podObj({ name: 'db-2', namespace: 'data', node: 'n1', serviceAccountName: 'db' }))
  await waitFor(async () => (await sign(client('token-n1'), DB.uri)).ok, { timeoutMs: 15_000, what: 'db on n1 to be signable' })
  api.delete(PODS, 'data', 'db-2')
  await waitFor(async () => !(await sign(client('token-n1'), DB.uri)).ok, { timeoutMs: 15_000, what: 'db on n1 to be refused again' })
  api.apply(PODS, podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web', phase: 'Succeeded' }))
  await waitFor(async () => !(await sign(client('token-n1'), WEB.uri)).ok, { timeoutMs: 15_000, what: 'a finished pod no longer counting' })
})

/** Ferry's conditions on an object as the stand-in API server stores it. */
function ferryConditions (api: FakeKubeApi, path: `/${string}`, ns: string, name: string): Record<string, { status: string, reason: string, message: string, observedGeneration?: number }> {
  const conditions = (api.get(path, `${ns}/${name}`)?.status?.conditions ?? []) as Array<{ type: string, status: string, reason: string, message: string, observedGeneration?: number }>
  return Object.fromEntries(conditions.filter((c) => c.type.startsWith('Ferry')).map((c) => [c.type, c]))
}

// Guards per-object admission from the API server and the status it writes: a bad object
// is refused alone (before, it froze every later change), reported in its own status,
// and the objects Ferry enforces narrower than written say what it left out.
t.test('policies from the CRDs on the configuration stream; each object\'s verdict in its status; a bad object refused alone', async (t) => {
  const { api, controller, lines } = await setup(t)
  t.equal(controller.configVersion(), 1, 'the first set was in before the controller listened')
  const { log } = captureLog()
  const stream = new ConfigStream({ address: controller.address, caRootsPem: controller.rootCertPem, token: () => 'token-n1', log, registry: new Registry(), startTimeoutMs: 10_000 })
  t.teardown(() => { stream.close() })
  const snapshots: ConfigSnapshot[] = []
  await stream.start({ onSnapshot: (s) => { snapshots.push(s) } })
  const first = stream.current() as ConfigSnapshot
  t.same(first.authorizationPolicies.map((p) => [p.apiVersion, p.ref, p.spec.action]), [['security.ferry.dev/v1alpha1', 'prod/deny-dev', 'DENY']])
  t.same(first.authorizationPolicies[0].metadata.annotations, {}, 'kubectl\'s copy of the object is not configuration')
  t.equal(first.authorizationPolicies[0].origin.file, 'kubernetes:security.ferry.dev/v1alpha1/AuthorizationPolicy/prod/deny-dev')
  await waitFor(() => controller.configAgents()[0]?.state === 'acked', { what: 'the ACK' })
  t.match(controller.configAgents()[0], { node: 'n1', principal: /ferry-agent/ })
  const accepted = await waitFor(() => ferryConditions(api, FERRY_AP, 'prod', 'deny-dev').FerryAccepted, { what: 'the status of prod/deny-dev' })
  t.match(accepted, { status: 'True', reason: 'Accepted', observedGeneration: 1 })
  t.match(ferryConditions(api, FERRY_AP, 'prod', 'deny-dev').FerryDegraded, { status: 'False', reason: 'AsWritten' })

  // Istio's kind with request principals (JWTs): enforced without them (a DENY denies more), said so in its status.
  api.apply(ISTIO_AP, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-post', namespace: 'app', generation: 2 }, spec: { action: 'DENY', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }], to: [{ operation: { ports: ['8080'] } }] }] } })
  await waitFor(() => stream.current()?.authorizationPolicies.some((p) => p.ref === 'app/deny-post') === true, { timeoutMs: 20_000, what: 'the Istio object at the agent' })
  const degraded = await waitFor(() => ferryConditions(api, ISTIO_AP, 'app', 'deny-post').FerryDegraded, { what: 'the status of app/deny-post' })
  t.match(degraded, { status: 'True', reason: 'UnsupportedValue', observedGeneration: 2, message: /spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals: not supported by Ferry.*rule 0 of this DENY policy is applied without it: it matches more connections, so it denies more/ })
  t.match(ferryConditions(api, ISTIO_AP, 'app', 'deny-post').FerryAccepted, { status: 'True', reason: 'UnsupportedValue' })

  // An object Ferry refuses (the API server would refuse it too with Ferry's CRD; an
  // older CRD, or Istio's, might not): refused alone, with its name and field.
  api.apply(FERRY_AP, apObject('bad', 'prod', { action: 'PERMIT' }))
  await waitFor(() => lines.some((l) => l.msg === 'configuration object refused' && l.object === 'AuthorizationPolicy prod/bad'), { timeoutMs: 15_000, what: 'the refusal' })
  const refused = lines.find((l) => l.msg === 'configuration object refused') as unknown as { issues: string[] }
  t.match(refused.issues, [/^kubernetes:security\.ferry\.dev\/v1alpha1\/AuthorizationPolicy\/prod\/bad:\d+: AuthorizationPolicy prod\/bad: spec\.action: "PERMIT" is not one of "ALLOW", "DENY"/])
  const invalid = await waitFor(() => ferryConditions(api, FERRY_AP, 'prod', 'bad').FerryAccepted, { what: 'the status of prod/bad' })
  t.match(invalid, { status: 'False', reason: 'Invalid', message: /spec\.action: "PERMIT" is not one of "ALLOW", "DENY"; nothing of it is in force/ })

  // …and a good change elsewhere goes through.
  api.apply(FERRY_PA, { apiVersion: 'security.ferry.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'prod' }, spec: { mtls: { mode: 'STRICT' } } })
  await waitFor(() => stream.current()?.peerAuthentications.length === 1, { timeoutMs: 15_000, what: 'the PeerAuthentication at the agent' })
  t.same(stream.current()?.authorizationPolicies.map((p) => p.ref), ['app/deny-post', 'prod/deny-dev'], 'prod/bad is not in force')
  t.match(stream.current()?.objects.find((o) => o.object === 'AuthorizationPolicy prod/bad'), { state: 'refused', reportedBy: 'controller' })

  // The controller's own writes come back through its watch and settle.
  await waitFor(() => ferryConditions(api, FERRY_PA, 'prod', 'default').FerryAccepted !== undefined, { what: 'the status of the PeerAuthentication' })
  const settled = api.statusPatches.length
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(api.statusPatches.length, settled, 'no status written again when nothing changed')
  t.equal(api.statusPatches.filter((p) => p.key === 'prod/deny-dev').length, 1, 'each status written once')

  api.delete(FERRY_AP, 'prod', 'bad')
  api.delete(FERRY_AP, 'prod', 'deny-dev')
  await waitFor(() => stream.current()?.authorizationPolicies.length === 1, { timeoutMs: 15_000, what: 'the deletions at the agent' })
  t.same(stream.current()?.objects.filter((o) => o.state === 'refused'), [], 'nothing refused any more')
})

// Routes from Gateway API's and Istio's CRDs: on the stream like policies, their status
// as their APIs define it (Accepted / ResolvedRefs per Service parent; a VirtualService
// a Gateway API route wins over says it is overridden), a bad edit refused alone.
t.test('routes from the CRDs on the configuration stream, with their status; a refused edit keeps the earlier version', async (t) => {
  const { api, controller } = await setup(t, [HTTP_ROUTES, VIRTUAL_SERVICES])
  const route = (weights: [number, number], extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'reviews', namespace: 'prod', generation: weights[0] },
    spec: { parentRefs: [{ kind: 'Service', name: 'reviews' }], rules: [{ ...extra, backendRefs: [{ name: 'reviews-v1', port: 9080, weight: weights[0] }, { name: 'reviews-v2', port: 9080, weight: weights[1] }] }] }
  })
  api.apply(HTTP_ROUTES, route([90, 10]))
  api.apply(VIRTUAL_SERVICES, { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'prod', generation: 1 }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } })
  const { log } = captureLog()
  const stream = new ConfigStream({ address: controller.address, caRootsPem: controller.rootCertPem, token: () => 'token-n1', log, registry: new Registry(), startTimeoutMs: 10_000 })
  t.teardown(() => { stream.close() })
  await stream.start({ onSnapshot: () => {} })
  const weights = (): number[] | undefined => stream.current()?.httpRoutes[0]?.spec.rules?.[0].backendRefs?.map((b) => b.weight ?? 1)
  await waitFor(() => weights()?.[0] === 90, { timeoutMs: 20_000, what: 'the route at the agent (Gateway API\'s CRD found by its probe)' })
  t.same(stream.current()?.virtualServices.map((v) => v.ref), ['prod/reviews'])

  const parents = await waitFor(() => api.get(HTTP_ROUTES, 'prod/reviews')?.status?.parents, { what: 'the route\'s status' })
  t.match(parents, [{ parentRef: { kind: 'Service', name: 'reviews' }, controllerName: 'ferry.dev/mesh', conditions: [{ type: 'Accepted', status: 'True', observedGeneration: 90 }, { type: 'ResolvedRefs', status: 'True' }] }])
  const overridden = await waitFor(() => ferryConditions(api, VIRTUAL_SERVICES, 'prod', 'reviews').FerryOverridden, { what: 'the VirtualService\'s status' })
  t.match(overridden, { status: 'True', reason: 'OverriddenByRoute', message: /Service prod\/reviews by HTTPRoute prod\/reviews/ })

  api.apply(HTTP_ROUTES, route([50, 50], { sessionPersistence: { sessionName: 's' } }))
  await waitFor(() => (api.get(HTTP_ROUTES, 'prod/reviews')?.status?.parents?.[0]?.conditions?.[0]?.status) === 'False', { what: 'the refusal in the route\'s status' })
  t.match(api.get(HTTP_ROUTES, 'prod/reviews')?.status?.parents?.[0]?.conditions?.[0], { reason: 'UnsupportedValue', message: /spec\.rules\[0\]\.sessionPersistence: not supported by Ferry.*the earlier version .* keeps applying/, observedGeneration: 50 })
  await waitFor(() => stream.current()?.objects.some((o) => o.object === 'HTTPRoute prod/reviews' && o.reportedBy === 'controller') === true, { what: 'the refusal at the agent' })
  t.same(weights(), [90, 10], 'the 90/10 split keeps serving at the agent')
})

t.test('Istio\'s CRDs are optional: absent counts as empty, and they are picked up once installed', async (t) => {
  const api = new FakeKubeApi()
  for (const p of [FERRY_AP, FERRY_PA, FERRY_RL]) api.install(p)
  api.apply(FERRY_AP, apObject('deny-dev', 'prod', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['dev'] } }] }] }))
  await api.start()
  t.teardown(async () => { await api.close() })
  const objects = new KubernetesPolicyObjects({ kubeconfig: { server: api.url }, probeMs: 200 })
  t.teardown(() => { objects.close() })
  const seen: Array<readonly PolicyObjects[]> = []
  const errors: string[] = []
  objects.start({ onObjects: (all) => { seen.push(all) }, onError: (err) => { errors.push(err.message) } })
  await waitFor(() => seen.length > 0, { timeoutMs: 15_000, what: 'the first set' })
  const names = (all: readonly PolicyObjects[]): string[] => all.flatMap((p) => p.objects.map((o) => `${p.collection.group}/${(o as { metadata: { name: string } }).metadata.name}`))
  t.same(names(seen[0]), ['security.ferry.dev/deny-dev'])
  t.same(errors, [], 'a missing optional CRD is not an error')

  api.install(ISTIO_AP)
  api.apply(ISTIO_AP, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-web', namespace: 'app' }, spec: { rules: [{}] } })
  await waitFor(() => names(seen[seen.length - 1]).includes('security.istio.io/allow-web'), { timeoutMs: 15_000, what: 'the Istio object' })
  t.same(errors, [])
})

t.test('`ferry controller --kubernetes --kubeconfig FILE` as a process: the CLI path signs for a TokenReview-checked agent', async (t) => {
  const api = new FakeKubeApi()
  for (const p of [FERRY_AP, FERRY_PA, FERRY_RL]) api.install(p)
  api.apply(PODS, podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' }))
  api.reviews.set('token-n1', REVIEWS.agentOn('n1'))
  await api.start()
  t.teardown(async () => { await api.close() })
  const dir = tmpDir(t)
  const kubeconfig = join(dir, 'kubeconfig')
  writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: test',
    'clusters: [{ name: test, cluster: { server: "' + api.url + '", insecure-skip-tls-verify: true } }]',
    'users: [{ name: test, user: { token: controller-token } }]',
    'contexts: [{ name: test, context: { cluster: test, user: test } }]', ''
  ].join('\n'))
  const child = spawn(process.execPath, [FERRY, 'controller', '--data-dir', join(dir, 'ca'), '--listen', '127.0.0.1:0', '--kubernetes', '--kubeconfig', kubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const listening = await waitFor(() => out.split('\n').filter((l) => l.includes('"controller listening"')).map((l) => JSON.parse(l) as { address: string, rootCert: string, authenticator: string, config: string })[0],
    { timeoutMs: 30_000, what: `the controller to listen:\n${out}` })
  t.match(listening, { authenticator: 'kubernetes-token-review', config: 'kubernetes' })
  const client = new CaClient({ address: listening.address, caRootsPem: readFileSync(listening.rootCert, 'utf8'), token: () => 'token-n1', callTimeoutMs: 5000 })
  t.teardown(() => { client.close() })
  t.same(await sign(client, WEB.uri), { ok: true })
  t.match(await sign(client, DB.uri), { ok: false, code: 'FERRY_ERR_CA_REFUSED', message: /PERMISSION_DENIED/ })
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0)
})
