import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { ConfigStream } from '../../src/agent/config-stream'
import type { ConfigFeed, ConfigVersion } from '../../src/controller/config-feed'
import { documentsDigest } from '../../src/controller/config-wire'
import { configProtos } from '../../src/controller/config-protos'
import { isFerryError } from '../../src/errors'
import type { ObjectReport } from '../../src/resources/reports'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { captureLog, startCa, tmpDir, type CaHarness } from './harness'
import { waitFor } from '../helpers/wait'

// The configuration stream over real grpc-js and TLS, between the real controller
// (Controller.start, its --config-dir feed or a feed the test drives) and the agent's
// ConfigStream: delivery and ACK, objects refused one by one (by the controller or the
// agent) while everything else goes through, NACK only for what the agent cannot use at
// all, and streams refused without a valid token.

const DENY_DEV = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-dev
  namespace: prod
spec:
  action: DENY
  rules:
    - from:
        - source:
            namespaces: ["dev"]
`
const STRICT_PROD = `apiVersion: security.ferry.dev/v1alpha1
kind: PeerAuthentication
metadata:
  name: default
  namespace: prod
spec:
  mtls:
    mode: STRICT
`

function writeAtomic (dir: string, name: string, text: string): void {
  writeFileSync(join(dir, `.${name}.tmp`), text)
  renameSync(join(dir, `.${name}.tmp`), join(dir, name))
}

function agentStream (t: { teardown: (fn: () => void) => void }, h: CaHarness, node: string, opts: { token?: string, registry?: Registry, startTimeoutMs?: number } = {}): { stream: ConfigStream, snapshots: ConfigSnapshot[], lines: ReturnType<typeof captureLog>['lines'], registry: Registry } {
  const { log, lines } = captureLog()
  const registry = opts.registry ?? new Registry()
  const token = opts.token ?? h.tokenOf.get(node) as string
  const stream = new ConfigStream({
    address: h.controller.address,
    caRootsPem: h.controller.rootCertPem,
    token: () => token,
    log,
    registry,
    backoff: { initialMs: 100, maxMs: 500, multiplier: 2, jitter: 0.5 },
    startTimeoutMs: opts.startTimeoutMs ?? 10_000
  })
  t.teardown(() => { stream.close() })
  const snapshots: ConfigSnapshot[] = []
  return { stream, snapshots, lines, registry }
}

async function metric (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)
  return m?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value
}

t.test('a snapshot is delivered, validated, applied and ACKed; a change follows as the next version', async (t) => {
  const dir = tmpDir(t)
  const configDir = join(dir, 'policies')
  mkdirSync(configDir)
  writeAtomic(configDir, 'deny.yaml', DENY_DEV)
  const h = await startCa(t, { dir, configDir })
  t.equal(h.controller.configVersion(), 1)
  const a = agentStream(t, h, 'n1')
  await a.stream.start({ onSnapshot: (s) => { a.snapshots.push(s) } })

  t.equal(a.snapshots.length, 1, 'applied before start() resolved')
  const s = a.stream.current() as ConfigSnapshot
  t.equal(s.generation, 1)
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'])
  t.match(s.origin, /^controller 127\.0\.0\.1:\d+ version 1$/)
  t.equal(s.rootNamespace, 'ferry-system')
  t.ok(Object.isFrozen(s), 'a frozen snapshot, as from a directory')

  const agents = await waitFor(() => h.controller.configAgents().find((x) => x.state === 'acked'), { what: 'the ACK on the controller' })
  t.match(agents, { node: 'n1', principal: 'lab-node:n1', sent: 1, acked: 1, nacked: null, state: 'acked' })
  t.ok(h.lines.some((l) => l.msg === 'configuration acknowledged' && l.node === 'n1' && l.version === 1), 'the controller logs the ACK')
  t.equal(await metric(h.controller.registry, 'ferry_controller_config_streams', { state: 'acked' }), 1)
  t.equal(await metric(h.controller.registry, 'ferry_controller_config_responses_total', { result: 'ack' }), 1)
  t.equal(await metric(a.registry, 'ferry_config_stream_connected'), 1)
  t.equal(await metric(a.registry, 'ferry_config_stream_version'), 1)
  t.equal(await metric(a.registry, 'ferry_config_generation'), 1)
  t.match(a.stream.state(), { connected: true, version: 1, lastAck: { version: 1 }, lastNack: null })

  writeAtomic(configDir, 'strict.yaml', STRICT_PROD)
  await waitFor(() => a.snapshots.length === 2, { what: 'version 2 at the agent' })
  t.equal(a.stream.current()?.generation, 2)
  t.same(a.stream.current()?.peerAuthentications.map((p) => p.ref), ['prod/default'])
  await waitFor(() => h.controller.configAgents()[0]?.acked === 2, { what: 'ACK of version 2' })
  t.equal(await metric(a.registry, 'ferry_config_stream_version'), 2)

  // Guards per-object admission on the controller: a bad object in one namespace is
  // refused alone (before, it froze the whole directory), and a good change elsewhere is
  // still delivered and applied.
  writeAtomic(configDir, 'bad.yaml', DENY_DEV.replace('name: deny-dev', 'name: broken').replace('namespace: prod', 'namespace: dev').replace('namespaces:', 'namespace:'))
  await waitFor(() => h.lines.some((l) => l.msg === 'configuration object refused' && l.object === 'AuthorizationPolicy dev/broken'), { what: 'the controller refusing the bad object' })
  const refusedLine = h.lines.find((l) => l.msg === 'configuration object refused') as unknown as { issues: string[], inForce: string }
  t.match(refusedLine.issues[0], /bad\.yaml:11: AuthorizationPolicy dev\/broken: spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field/)
  t.equal(refusedLine.inForce, 'none')
  await waitFor(() => a.stream.current()?.objects.some((o) => o.object === 'AuthorizationPolicy dev/broken' && o.reportedBy === 'controller') === true, { what: 'the refusal reported to the agent' })
  t.same(a.stream.current()?.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'], 'nothing of it in force at the agent')
  t.equal(await metric(a.registry, 'ferry_config_stale'), 1, 'the agent knows part of the configuration is not in force')
  t.equal(await metric(h.controller.registry, 'ferry_controller_config_objects', { state: 'refused' }), 1)

  writeAtomic(configDir, 'strict.yaml', STRICT_PROD.replace('STRICT', 'PERMISSIVE'))
  await waitFor(() => a.stream.current()?.peerAuthentications[0]?.spec.mtls?.mode === 'PERMISSIVE', { what: 'the good change in prod at the agent' })
  const v = h.controller.configVersion() as number
  await waitFor(() => h.controller.configAgents()[0]?.acked === v, { what: 'its ACK' })
  t.equal(h.controller.configAgents()[0].state, 'acked', 'ACKed: the agent applied it')
  t.same(a.stream.current()?.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'])
  t.equal(h.lines.filter((l) => l.msg === 'configuration object refused').length, 1, 'the refusal logged once, not on every change')
})

/** A feed the test drives: publishes whatever documents it is given, valid or not (a newer controller, say). */
class ScriptedFeed implements ConfigFeed {
  readonly kind = 'scripted'
  private publish: (v: ConfigVersion) => void = () => {}
  private last: ConfigVersion | null = null
  async start (onVersion: (v: ConfigVersion) => void): Promise<void> { this.publish = onVersion }
  current (): ConfigVersion | null { return this.last }
  close (): void {}
  send (documents: Array<{ path: string, text: string }>, refused: ObjectReport[] = []): void {
    const v: ConfigVersion = { version: (this.last?.version ?? 0) + 1, origin: 'scripted', rootNamespace: 'ferry-system', documents, refused, digest: documentsDigest(documents, refused) }
    this.last = v
    this.publish(v)
  }
}

// Guards the ACK/NACK contract: an object the agent refuses (a newer controller, say) is
// refused alone — ACKed, listed, its earlier version kept — and a NACK is only for a
// snapshot the agent cannot use at all.
t.test('an object the agent refuses is ACKed and listed, its earlier version kept; a snapshot it cannot use is NACKed', async (t) => {
  const feed = new ScriptedFeed()
  const h = await startCa(t, { deps: { configFeed: feed } })
  const a = agentStream(t, h, 'n2')
  const rejected: string[] = []
  feed.send([{ path: 'deny.yaml', text: DENY_DEV }])
  await a.stream.start({ onSnapshot: (s) => { a.snapshots.push(s) }, onRejected: (err) => { rejected.push(err.message) } })
  t.equal(a.stream.current()?.generation, 1)

  // Version 2: deny-dev with a bad CIDR (refused: its version 1 keeps applying) and a
  // field Ferry cannot enforce in a new policy (degraded), and a good new one.
  feed.send([
    { path: 'deny.yaml', text: DENY_DEV.replace('namespaces: ["dev"]', 'namespaces: ["qa"]\n            ipBlocks: ["10.0.0.0/33"]') },
    { path: 'l7.yaml', text: DENY_DEV.replace('deny-dev', 'deny-post').replace('namespaces: ["dev"]', 'requestPrincipals: ["*"]') },
    { path: 'strict.yaml', text: STRICT_PROD }
  ])
  await waitFor(() => h.controller.configAgents()[0]?.acked === 2, { what: 'the ACK of version 2' })
  const acked = h.controller.configAgents()[0]
  t.match(acked, { node: 'n2', state: 'acked', nacked: null })
  const warn = h.lines.find((l) => l.msg === 'the agent refused objects the controller accepted; it keeps their last valid version') as Record<string, unknown>
  t.match(warn, { node: 'n2', version: 2, code: 'FERRY_ERR_CONFIG', refused: [/deny\.yaml:\d+: AuthorizationPolicy prod\/deny-dev: spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]: "10\.0\.0\.0\/33" is not an IP address or CIDR block/, /AuthorizationPolicy prod\/deny-dev: the earlier version \(deny\.yaml:1\) keeps applying/] })
  const s = a.stream.current() as ConfigSnapshot
  t.equal(s.generation, 2)
  t.same(s.authorizationPolicies.find((p) => p.ref === 'prod/deny-dev')?.spec.rules?.[0].from?.[0].source.namespaces, ['dev'], 'the earlier version keeps applying')
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev', 'prod/deny-post'])
  t.match(s.objects.find((o) => o.object === 'AuthorizationPolicy prod/deny-post'), { state: 'degraded' })
  t.same(s.peerAuthentications.map((p) => p.ref), ['prod/default'], 'the good change applies')
  t.equal(await metric(a.registry, 'ferry_config_stale'), 1)
  t.equal(await metric(a.registry, 'ferry_config_rejected_total'), 1)
  t.equal(rejected.length, 0)

  // A document without a name: the agent cannot use the snapshot at all.
  feed.send([{ path: '', text: DENY_DEV }])
  const nacked = await waitFor(() => h.controller.configAgents().find((x) => x.state === 'nacked'), { what: 'the NACK on the controller' })
  t.match(nacked, { acked: 2, nacked: { version: 3, reasons: ['documents[0]: a document needs a name and a text'] } })
  t.match(h.lines.find((l) => l.msg === 'configuration not usable by the agent; it keeps the configuration it has'), { node: 'n2', version: 3, code: 'FERRY_ERR_CONFIG_STREAM' })
  t.equal(await metric(h.controller.registry, 'ferry_controller_config_responses_total', { result: 'nack' }), 1)
  t.equal(a.stream.current()?.generation, 2, 'generation 2 keeps serving')
  t.match(a.stream.state(), { version: 2, lastNack: { version: 3 } })
  t.ok(a.lines.some((l) => l.msg === 'snapshot from the controller not usable; the configuration in force keeps serving'))

  feed.send([{ path: 'deny.yaml', text: DENY_DEV }, { path: 'strict.yaml', text: STRICT_PROD }])
  await waitFor(() => h.controller.configAgents()[0]?.state === 'acked', { what: 'ACK of version 4' })
  t.equal(h.controller.configAgents()[0].acked, 4)
  t.equal(a.stream.current()?.generation, 3, 'the next one is the next generation')
  t.equal(await metric(a.registry, 'ferry_config_stale'), 0)
})

// Guards the agent's own memory: a controller that lost its saved state (a pod scheduled
// anew) refuses a broken object with nothing of it in force; the agent, which knows its
// last valid version, keeps enforcing that version instead of dropping the object.
t.test('an object the controller refuses with nothing in force keeps, at the agent, the earlier version the agent knows', async (t) => {
  const feed = new ScriptedFeed()
  const h = await startCa(t, { deps: { configFeed: feed } })
  const a = agentStream(t, h, 'n1')
  feed.send([{ path: 'deny.yaml', text: DENY_DEV }, { path: 'strict.yaml', text: STRICT_PROD }])
  await a.stream.start({ onSnapshot: (s) => { a.snapshots.push(s) } })
  const refused: ObjectReport = {
    state: 'refused', object: 'AuthorizationPolicy prod/deny-dev', key: 'AuthorizationPolicy/prod/deny-dev', apiVersion: 'security.istio.io/v1', file: 'deny.yaml', line: 1,
    issues: [{ file: 'deny.yaml', line: 11, object: 'AuthorizationPolicy prod/deny-dev', path: ['spec', 'rules', 0, 'from', 0, 'source', 'namespace'], message: 'unknown field' }],
    inForce: 'none', refusal: 'invalid', note: 'nothing of it is in force (no earlier valid version)'
  }
  feed.send([{ path: 'strict.yaml', text: STRICT_PROD }], [refused])
  await waitFor(() => h.controller.configAgents()[0]?.acked === 2, { what: 'the ACK of version 2' })
  const s = a.stream.current() as ConfigSnapshot
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'], 'still enforced at the agent')
  t.match(s.objects.find((o) => o.object === 'AuthorizationPolicy prod/deny-dev'), {
    state: 'refused', reportedBy: 'controller', inForce: 'earlier-version', note: /here its earlier version \(deny\.yaml:1\) keeps applying/, issues: [{ file: 'deny.yaml', line: 11, path: ['spec.rules[0].from[0].source.namespace'], message: 'unknown field' }]
  })
  feed.send([{ path: 'strict.yaml', text: STRICT_PROD }])
  await waitFor(() => a.stream.current()?.authorizationPolicies.length === 0, { what: 'a deletion (no refusal) to apply' })
  t.pass('deleted, it goes')
})

t.test('the same documents again (another controller version) are ACKed without a new generation', async (t) => {
  const feed = new ScriptedFeed()
  const h = await startCa(t, { deps: { configFeed: feed } })
  const a = agentStream(t, h, 'n1')
  feed.send([{ path: 'deny.yaml', text: DENY_DEV }])
  await a.stream.start({ onSnapshot: (s) => { a.snapshots.push(s) } })
  feed.send([{ path: 'deny.yaml', text: DENY_DEV }])
  await waitFor(() => h.controller.configAgents()[0]?.acked === 2, { what: 'ACK of version 2' })
  t.equal(a.snapshots.length, 1)
  t.equal(a.stream.current()?.generation, 1)
})

t.test('streams are refused without a token, with a bad token, and when the controller has no configuration', async (t) => {
  const dir = tmpDir(t)
  const configDir = join(dir, 'policies')
  mkdirSync(configDir)
  writeAtomic(configDir, 'deny.yaml', DENY_DEV)
  const h = await startCa(t, { dir, configDir })

  // No credential at all: a client with TLS only.
  const { ConfigClient } = configProtos()
  const bare = new ConfigClient(h.controller.address, grpc.credentials.createSsl(Buffer.from(h.controller.rootCertPem)))
  t.teardown(() => { bare.close() })
  const status = await new Promise<grpc.ServiceError>((resolve) => {
    const call = (bare as unknown as { Stream: () => grpc.ClientDuplexStream<unknown, unknown> }).Stream()
    call.on('data', () => { resolve(new Error('got a snapshot') as grpc.ServiceError) })
    call.on('error', resolve)
  })
  t.equal(status.code, grpc.status.UNAUTHENTICATED)
  t.match(status.details, /^FERRY_ERR_AUTHN: no bearer token/)

  // A bearer token the lab does not know.
  const a = agentStream(t, h, 'n1', { token: 'not-a-node-token-at-all-000000', startTimeoutMs: 1000 })
  const snapshots: ConfigSnapshot[] = []
  await a.stream.start({ onSnapshot: (s) => { snapshots.push(s) } })
  await waitFor(() => a.stream.state().lastError !== null, { what: 'the refusal at the agent' })
  t.match(a.stream.state().lastError, /configuration stream at 127\.0\.0\.1:\d+ refused: UNAUTHENTICATED: FERRY_ERR_AUTHN: unknown bearer token/)
  t.match(a.lines.find((l) => l.msg === 'configuration stream down; the last good configuration keeps serving'), { code: 'FERRY_ERR_CONFIG_STREAM' })
  t.equal(a.stream.current(), null)
  t.equal(snapshots.length, 0)
  t.ok(h.lines.some((l) => l.msg === 'configuration stream refused' && l.code === 'FERRY_ERR_AUTHN' && l.status === 'UNAUTHENTICATED'), 'logged by the controller')
  t.equal(h.controller.configAgents().length, 0, 'no agent recorded')
  t.ok((await metric(h.controller.registry, 'ferry_controller_config_streams_refused_total', { code: 'FERRY_ERR_AUTHN' }) ?? 0) >= 2)
  // It keeps retrying with backoff (not once and done).
  await waitFor(async () => (await metric(a.registry, 'ferry_config_stream_connects_total') ?? 0) >= 3, { what: 'retries' })

  const none = await startCa(t, { deps: { configFeed: null } })
  const b = agentStream(t, none, 'n1', { startTimeoutMs: 1000 })
  await b.stream.start({ onSnapshot: () => {} })
  await waitFor(() => b.stream.state().lastError !== null, { what: 'the refusal' })
  t.match(b.stream.state().lastError, /refused: FAILED_PRECONDITION: FERRY_ERR_CONFIG_STREAM: this controller serves no configuration/)
})

t.test('a closed stream leaves the snapshot in place; start() twice is refused', async (t) => {
  const feed = new ScriptedFeed()
  const h = await startCa(t, { deps: { configFeed: feed } })
  feed.send([{ path: 'deny.yaml', text: DENY_DEV }])
  const a = agentStream(t, h, 'n1')
  await a.stream.start({ onSnapshot: () => {} })
  const again = await a.stream.start({ onSnapshot: () => {} }).then(() => null, (err: unknown) => err)
  t.ok(isFerryError(again, 'FERRY_ERR_INVALID_ARG'), 'a second start() is refused')
  a.stream.close()
  t.equal(a.stream.current()?.generation, 1)
  await waitFor(() => h.controller.configAgents().length === 0, { what: 'the controller forgetting the stream' })
})

const CANARY = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: prod
spec:
  parentRefs:
  - kind: Service
    name: reviews
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
`
const SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: prod
spec:
  host: reviews
  subsets:
  - name: v1
    labels: { version: v1 }
`

// The traffic kinds travel on the same stream, admitted object by object on both ends: a
// route's refused new version leaves its earlier version in force at the agent, and a
// good change to another object is delivered beside it.
t.test('routes and traffic policies on the stream: a refused new version of a route keeps the earlier one at the agent', async (t) => {
  const dir = tmpDir(t)
  const configDir = join(dir, 'routes')
  mkdirSync(configDir)
  writeAtomic(configDir, 'canary.yaml', CANARY)
  writeAtomic(configDir, 'subsets.yaml', SUBSETS)
  const h = await startCa(t, { dir, configDir })
  const a = agentStream(t, h, 'n1')
  await a.stream.start({ onSnapshot: (s) => { a.snapshots.push(s) } })
  const weights = (): number[] | undefined => a.stream.current()?.httpRoutes[0]?.spec.rules?.[0].backendRefs?.map((b) => b.weight ?? 1)
  t.same(weights(), [90, 10])
  t.same(a.stream.current()?.destinationRules.map((d) => d.ref), ['prod/reviews'])

  writeAtomic(configDir, 'canary.yaml', CANARY.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50').replace('  rules:\n  - backendRefs:', '  rules:\n  - sessionPersistence: { sessionName: s }\n    backendRefs:'))
  writeAtomic(configDir, 'subsets.yaml', SUBSETS + '  - name: v2\n    labels: { version: v2 }\n')
  await waitFor(() => a.stream.current()?.destinationRules[0]?.spec.subsets?.length === 2, { what: 'the DestinationRule change at the agent' })
  t.same(weights(), [90, 10], 'the refused 50/50 is not in force: the 90/10 route keeps serving')
  const refused = a.stream.current()?.objects.find((o) => o.object === 'HTTPRoute prod/reviews')
  t.match(refused, { state: 'refused', reportedBy: 'controller', inForce: 'earlier-version' })
  t.match(refused?.issues.map((i) => i.message).join('\n'), /not supported by Ferry: session persistence/)
  t.match(refused?.issues[0].file, /canary\.yaml$/)
})
