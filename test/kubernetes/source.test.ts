import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { type ClusterSnapshot, createDiscoverySource, ServiceIndex } from '../../src/discovery'
import type { FerryError } from '../../src/errors'
import '../../src/kubernetes'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { KubernetesDiscoverySource } from '../../src/kubernetes/source'
import { ListWatchServer } from '../../src/lab/api-server'
import { namespace, pod, service } from './objects'
import { writeTestKubeconfig } from './kubeconfig'
import { waitFor } from '../helpers/wait'

// NOT A REAL CLUSTER. No Kubernetes API server can run on this machine, so the
// `kubernetes` discovery source (the official @kubernetes/client-node: its ListWatch,
// Watch and CoreV1Api) is driven against a local HTTP server on 127.0.0.1 that speaks
// the list + watch protocol (the lab's src/lab/api-server.ts: resourceVersions, field
// selectors, paging, chunked watch events, BOOKMARK, 410 Gone) and serves objects in
// the shape a v1.30 API server returns (test/kubernetes/objects.ts, written by hand in
// that shape). What this proves is the client-side behaviour against that protocol.

const silent = pino({ level: 'silent' })
const TOKEN = 'test-service-account-token'
const NODE = 'node-1'

class Events {
  readonly snapshots: ClusterSnapshot[] = []
  readonly errors: FerryError[] = []
  readonly watcher = {
    onSnapshot: (s: ClusterSnapshot) => { this.snapshots.push(s) },
    onError: (e: FerryError) => { this.errors.push(e) }
  }

  get last (): ClusterSnapshot { return this.snapshots[this.snapshots.length - 1] }
}

// The client is a large ES module (about 1.5 s to load): load it once, before the clocks start.
t.before(async () => { await loadKubernetesClient() })

const podNames = (s: ClusterSnapshot): string[] => s.pods.map((p) => `${p.namespace}/${p.name}@${p.nodeName ?? ''}`).sort()

async function setup (t: { teardown: (fn: () => void | Promise<void>) => void }, opts: { seed?: (api: ListWatchServer) => void, idleMs?: number } = {}): Promise<{ api: ListWatchServer, source: KubernetesDiscoverySource, events: Events }> {
  const api = new ListWatchServer(TOKEN)
  await api.start()
  api.apply('namespaces', namespace('shop', { 'ferry.dev/mesh': 'enabled' }))
  api.apply('namespaces', namespace('ops'))
  api.apply('pods', pod({ name: 'web-a', namespace: 'shop', node: NODE, ip: '10.244.1.10', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] }))
  api.apply('pods', pod({ name: 'web-b', namespace: 'shop', node: 'node-2', ip: '10.244.2.10', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] }))
  api.apply('pods', pod({ name: 'cart', namespace: 'shop', node: NODE, ip: '10.244.1.11', app: 'cart', serviceAccount: 'cart-sa' }))
  api.apply('pods', pod({ name: 'probe', namespace: 'ops', node: NODE, ip: '10.244.1.12', app: 'probe' }))
  api.apply('services', service({ name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }))
  opts.seed?.(api)
  const source = new KubernetesDiscoverySource({
    node: NODE,
    log: silent,
    kubeconfig: { server: api.url, token: TOKEN },
    debounceMs: 5,
    pageSize: 2,
    backoff: { initialMs: 20, maxMs: 100, multiplier: 2, jitter: 0 },
    watch: { timeoutSeconds: 30, idleMs: opts.idleMs ?? 60_000 }
  })
  const events = new Events()
  t.teardown(async () => { source.close(); await api.close() })
  source.start(events.watcher)
  return { api, source, events }
}

t.test('first snapshot: this node\'s pods, other nodes\' pods for routing, services and namespaces, once every list is in', async (t) => {
  const { api, source, events } = await setup(t, { seed: (api) => { api.failNext('list', 'services', 500) } })
  await waitFor(() => events.snapshots.length > 0, { what: 'the first snapshot' })
  const s = events.last
  t.equal(s.generation, 1)
  t.ok(s.services.length === 1, 'the failed services list was retried before the first snapshot: never a snapshot without them')
  t.match(events.errors.map((e) => `${e.code} ${e.message}`), [/^FERRY_ERR_KUBE_API services: list \/api\/v1\/services failed: HTTP 500/])
  t.same(podNames(s), ['ops/probe@node-1', 'shop/cart@node-1', 'shop/web-a@node-1', 'shop/web-b@node-2'])
  t.same(s.pods.filter((p) => p.nodeName === NODE).map((p) => p.name).sort(), ['cart', 'probe', 'web-a'], 'the pods to enroll')
  t.match(s.pods.find((p) => p.name === 'cart'), { serviceAccountName: 'cart-sa', workload: 'cart', podIPs: ['10.244.1.11'], phase: 'Running' })
  t.same(s.namespaces.find((n) => n.name === 'shop')?.labels['ferry.dev/mesh'], 'enabled')
  const entry = ServiceIndex.build(s).lookup('10.96.0.20', 80)
  t.same(entry?.endpoints.map((e) => `${e.address}:${e.port}`), ['10.244.1.10:8080', '10.244.2.10:8080'], 'the VIP routes to both nodes\' pods, named target port resolved')
  t.ok(Object.isFrozen(s) && Object.isFrozen(s.pods[0]), 'frozen like the file source\'s snapshots')

  const lists = api.requestsFor('pods', 'list')
  t.ok(lists.some((r) => r.query.fieldSelector === `spec.nodeName=${NODE}`), 'this node\'s pods by field selector')
  t.ok(lists.some((r) => r.query.fieldSelector === `spec.nodeName!=${NODE}`), 'the others by the opposite selector')
  t.ok(lists.some((r) => r.query.continue !== undefined), 'lists are paged (limit/continue)')
  t.ok(api.requests.every((r) => r.authorization === `Bearer ${TOKEN}`), 'every request carries the bearer token')
  await waitFor(() => api.openWatches() === 4, { what: 'the watches' })
  const watches = api.requestsFor('pods', 'watch')
  t.ok(watches.every((r) => r.query.allowWatchBookmarks === 'true' && Number(r.query.timeoutSeconds) >= 30 && Number(r.query.resourceVersion) > 0), 'watches resume from the list, ask for bookmarks and a server timeout')
  t.same(source.listCounts(), { localPods: 1, otherPods: 1, services: 1, namespaces: 1 })
})

t.test('watch events: ADDED, MODIFIED, DELETED, a pod scheduled onto this node; BOOKMARKs and status noise make no new generation', async (t) => {
  const { api, events } = await setup(t)
  await waitFor(() => events.snapshots.length === 1, { what: 'the first snapshot' })
  await waitFor(() => api.openWatches() === 4, { what: 'the watches' })

  api.apply('pods', pod({ name: 'web-c', namespace: 'shop', node: NODE, ip: '10.244.1.20', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] }))
  await waitFor(() => events.last.pods.some((p) => p.name === 'web-c'), { what: 'ADDED' })
  t.equal(events.last.generation, 2)

  const moved = pod({ name: 'web-c', namespace: 'shop', node: NODE, ip: '10.244.1.20', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] })
  moved.metadata.labels.version = 'v2'
  api.apply('pods', moved)
  await waitFor(() => events.last.pods.find((p) => p.name === 'web-c')?.labels.version === 'v2', { what: 'MODIFIED' })
  t.equal(events.last.generation, 3)

  api.bookmark()
  const heartbeat = structuredClone(moved)
  heartbeat.status.conditions[2].lastTransitionTime = '2025-11-21T00:00:00Z'
  api.apply('pods', heartbeat)
  api.delete('pods', 'shop', 'web-c')
  await waitFor(() => !events.last.pods.some((p) => p.name === 'web-c'), { what: 'DELETED' })
  t.equal(events.last.generation, 4, 'the bookmark and the status-only change made no generation of their own')

  api.apply('pods', pod({ name: 'batch', namespace: 'shop', node: '', app: 'batch' }))
  await waitFor(() => events.last.pods.some((p) => p.name === 'batch'), { what: 'a pending pod (on no node yet)' })
  t.equal(events.last.pods.find((p) => p.name === 'batch')?.nodeName, null)
  api.apply('pods', pod({ name: 'batch', namespace: 'shop', node: NODE, ip: '10.244.1.30', app: 'batch' }))
  await waitFor(() => events.last.pods.find((p) => p.name === 'batch')?.nodeName === NODE, { what: 'scheduled here' })
  t.equal(events.last.pods.filter((p) => p.name === 'batch').length, 1, 'it left the other-nodes watch and joined this node\'s, once')
  t.equal(events.errors.length, 0)
})

t.test('probe ports and readiness come from the API objects: a pod that turns not ready leaves its Service\'s endpoints and comes back', async (t) => {
  const { api, events } = await setup(t)
  await waitFor(() => events.snapshots.length === 1, { what: 'the first snapshot' })
  await waitFor(() => api.openWatches() === 4, { what: 'the watches' })
  const probes = {
    readinessProbe: { httpGet: { path: '/ready', port: 'http', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
    livenessProbe: { tcpSocket: { port: 8081 }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
    startupProbe: { exec: { command: ['cat', '/tmp/started'] }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 30 }
  }
  const web = (ready: boolean): Record<string, any> => pod({ name: 'web-a', namespace: 'shop', node: NODE, ip: '10.244.1.10', app: 'web', ports: [{ name: 'http', containerPort: 8080 }], probes, ready })
  const endpoints = (): string[] => ServiceIndex.build(events.last).lookup('10.96.0.20', 80)?.endpoints.map((e) => e.pod.name) ?? []
  api.apply('pods', web(true))
  await waitFor(() => events.last.pods.find((p) => p.name === 'web-a')?.probePorts.length === 2, { what: 'the probes' })
  t.same(events.last.pods.find((p) => p.name === 'web-a')?.probePorts, [8080, 8081], 'httpGet by name, tcpSocket by number; exec names none')
  t.same(endpoints(), ['web-a', 'web-b'])
  api.apply('pods', web(false))
  await waitFor(() => events.last.pods.find((p) => p.name === 'web-a')?.ready === false, { what: 'not ready' })
  t.same(endpoints(), ['web-b'], 'not ready: not an endpoint')
  api.apply('pods', web(true))
  await waitFor(() => events.last.pods.find((p) => p.name === 'web-a')?.ready === true, { what: 'ready again' })
  t.same(endpoints(), ['web-a', 'web-b'], 'ready again: back')
  t.equal(events.errors.length, 0)
})

t.test('a broken watch resumes from its last resourceVersion, catching up without a re-list', async (t) => {
  const { api, source, events } = await setup(t)
  await waitFor(() => events.snapshots.length === 1, { what: 'the first snapshot' })
  await waitFor(() => api.openWatches() === 4, { what: 'the watches' })
  const before = api.requestsFor('pods', 'watch').length
  api.breakWatches()
  api.apply('pods', pod({ name: 'during-outage', namespace: 'shop', node: NODE, ip: '10.244.1.40', app: 'late' }))
  await waitFor(() => events.last.pods.some((p) => p.name === 'during-outage'), { what: 'the change made while the watch was down' })
  // Both pod watches (this node's, the others') resume on their own; the change arrives on the first.
  await waitFor(() => api.requestsFor('pods', 'watch').length - before >= 2, { what: 'both pod watches resumed' })
  const resumed = api.requestsFor('pods', 'watch').slice(before)
  t.ok(resumed.length >= 2 && resumed.every((r) => Number(r.query.resourceVersion) > 0), 'watches resumed from a resourceVersion')
  t.same(source.listCounts(), { localPods: 1, otherPods: 1, services: 1, namespaces: 1 }, 'no re-list')
  t.ok(events.snapshots.every((s) => s.pods.some((p) => p.name === 'web-a')), 'nothing was dropped while the watch was down')

  api.endWatches()
  api.apply('services', service({ name: 'cart', namespace: 'shop', clusterIP: '10.96.0.21', selector: { app: 'cart' }, ports: [{ name: 'tcp', port: 9000, targetPort: 9000 }] }))
  await waitFor(() => events.last.services.length === 2, { what: 'a change after the server ended the watches (its timeout)' })
  t.same(source.listCounts(), { localPods: 1, otherPods: 1, services: 1, namespaces: 1 })
})

t.test('a watch that hears nothing, not even a bookmark, past its deadline is aborted, reported and resumed', async (t) => {
  const { api, source, events } = await setup(t, { idleMs: 300 })
  await waitFor(() => events.snapshots.length === 1, { what: 'the first snapshot' })
  const before = api.requestsFor('namespaces', 'watch').length
  await waitFor(() => events.errors.some((e) => /the watch heard nothing for 300 ms and was restarted/.test(e.message)), { what: 'the idle report' })
  await waitFor(() => api.requestsFor('namespaces', 'watch').length > before, { what: 'a new watch' })
  t.ok(api.requestsFor('namespaces', 'watch').slice(before).every((r) => Number(r.query.resourceVersion) > 0), 'resumed from its resourceVersion')
  t.same(source.listCounts(), { localPods: 1, otherPods: 1, services: 1, namespaces: 1 }, 'no re-list')
  api.apply('namespaces', namespace('fresh'))
  await waitFor(() => events.last.namespaces.some((n) => n.name === 'fresh'), { what: 'live again' })
})

for (const gone of ['event', 'http'] as const) {
  t.test(`410 Gone (${gone === 'event' ? 'an ERROR event, as kube-apiserver sends it' : 'an HTTP 410 answer'}): re-list, dropping nothing until the fresh list says so`, async (t) => {
    const { api, source, events } = await setup(t)
    api.gone = gone
    await waitFor(() => events.snapshots.length === 1, { what: 'the first snapshot' })
    await waitFor(() => api.openWatches() === 4, { what: 'the watches' })
    // While the watches are down: web-a is deleted, late-arrival created, and the
    // history they would replay is compacted away.
    api.breakWatches()
    api.delete('pods', 'shop', 'web-a')
    api.apply('pods', pod({ name: 'late-arrival', namespace: 'shop', node: NODE, ip: '10.244.1.50', app: 'late' }))
    api.compact()
    await waitFor(() => events.last.pods.some((p) => p.name === 'late-arrival'), { what: 'the re-listed snapshot' })
    t.notOk(events.last.pods.some((p) => p.name === 'web-a'), 'the fresh list removed the deleted pod')
    t.ok(events.snapshots.slice(0, -1).every((s) => s.pods.some((p) => p.name === 'web-a')), 'before the fresh list, web-a was never dropped')
    t.ok(events.snapshots.every((s) => s.pods.some((p) => p.name === 'cart')), 'the pods that stayed were in every snapshot')
    t.ok(source.listCounts().localPods >= 2, 'this node\'s pods were listed again')
    t.equal(events.last.generation, events.snapshots.length)
    await waitFor(() => api.openWatches() === 4, { what: 'watches again' })
    api.apply('pods', pod({ name: 'after', namespace: 'shop', node: NODE, ip: '10.244.1.60', app: 'after' }))
    await waitFor(() => events.last.pods.some((p) => p.name === 'after'), { what: 'live again after the re-list' })
  })
}

t.test('a wrong token is reported as FERRY_ERR_KUBE_API with the status, and retried', async (t) => {
  const api = new ListWatchServer('the-right-token')
  await api.start()
  const source = new KubernetesDiscoverySource({ node: NODE, log: silent, kubeconfig: { server: api.url, token: 'wrong' }, backoff: { initialMs: 20, maxMs: 50, multiplier: 2, jitter: 0 } })
  const events = new Events()
  t.teardown(async () => { source.close(); await api.close() })
  source.start(events.watcher)
  await waitFor(() => events.errors.length > 0, { what: 'an error' })
  t.match(events.errors[0], { code: 'FERRY_ERR_KUBE_API', message: /list \/api\/v1\/\w+ failed: HTTP 401/ })
  const n = api.requests.length
  await waitFor(() => api.requests.length > n + 3, { what: 'a retry' })
  t.equal(events.snapshots.length, 0)
})

t.test('registered as the "kubernetes" discovery source: target is the node, the API server comes from $KUBECONFIG', async (t) => {
  const api = new ListWatchServer(TOKEN)
  await api.start()
  api.apply('namespaces', namespace('shop'))
  api.apply('pods', pod({ name: 'one', namespace: 'shop', node: NODE, ip: '10.244.1.70', app: 'one' }))
  const dir = mkdtempSync(join(tmpdir(), 'ferry-kubeconfig-'))
  writeTestKubeconfig(join(dir, 'config'), api.url, TOKEN)
  const saved = process.env.KUBECONFIG
  process.env.KUBECONFIG = join(dir, 'config')
  const source = createDiscoverySource('kubernetes', { target: NODE, log: silent })
  const events = new Events()
  t.teardown(async () => {
    source.close()
    await api.close()
    if (saved === undefined) delete process.env.KUBECONFIG
    else process.env.KUBECONFIG = saved
    rmSync(dir, { recursive: true, force: true })
  })
  source.start(events.watcher)
  await waitFor(() => events.snapshots.length > 0, { what: 'a snapshot' })
  t.same(podNames(events.last), ['shop/one@node-1'])
  t.match(events.last.origin, /^kubernetes http:\/\/127\.0\.0\.1:\d+ \(node node-1\)$/)
  source.close()
  await waitFor(() => api.openWatches() === 0, { what: 'the watches closed' })
})
