import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, DRAIN_CLOSED_MESSAGE } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { PATHS } from '../../src/config/env'
import type { Pod } from '../../src/discovery/model'
import type { PodLocation, PodLocator } from '../../src/discovery/pod-locator'
import { ferryError } from '../../src/errors'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { ListWatchServer } from '../../src/lab/api-server'
import { captureLog, listen } from '../proxy/harness'
import { namespace, pod, service } from '../kubernetes/objects'
import { loopbackPlatform, RecordingCapture } from './loopback-platform'
import { writeTestKubeconfig } from '../kubernetes/kubeconfig'
import { waitFor } from '../helpers/wait'
import { counter } from '../telemetry/prom-text'

// `ferry agent --kubernetes` in-process, against the list + watch server on 127.0.0.1
// (src/lab/api-server.ts: the protocol, not a cluster) and the loopback platform (no
// root): the options select the `kubernetes` source from --kubeconfig; the namespace
// label and the pod annotation ferry.dev/mesh decide what is enrolled; pods of other
// nodes are left alone; a pod that cannot be located yet is located again without any
// change in the cluster; a delete unenrolls; a 410 Gone re-list loses nothing. Then the
// SIGTERM drain: not ready, no new connections, a live one carries on, the grace period
// bounds the wait. The real kubelet locator and a real agent process are exercised in
// test/e2e/kubernetes.test.ts.

const TOKEN = 'agent-test-token'

/** Locates the pods whose uid is in `present` (a "netns" is a file, for the loopback platform); others are not there yet. */
class SwitchableLocator implements PodLocator {
  readonly present = new Set<string>()
  constructor (private readonly dir: string) {}
  locate (p: Pod): PodLocation {
    if (!this.present.has(p.uid)) throw ferryError('FERRY_ERR_ENROLL', `pod ${p.namespace}/${p.name}: no process of the pod yet`)
    const netnsPath = join(this.dir, `netns-${p.name}`)
    writeFileSync(netnsPath, '')
    return { netnsPath, cgroupPath: `/sys/fs/cgroup/unified/kubepods.slice/pod-${p.name}` }
  }
}

async function httpStatus (port: number, path: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject)
  })
}

async function connectResult (port: number): Promise<string> {
  return await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.on('connect', () => { s.destroy(); resolve('connected') })
    s.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
}

t.before(async () => { await loadKubernetesClient() })

async function startAgent (t: { teardown: (fn: () => void | Promise<void>) => void }, opts: { drainGrace?: string } = {}): Promise<{ agent: Agent, api: ListWatchServer, capture: RecordingCapture, locator: SwitchableLocator, lines: any[], uidOf: (name: string) => string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-cluster-mode-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const api = new ListWatchServer(TOKEN)
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  api.apply('namespaces', namespace('shop', { 'ferry.dev/mesh': 'enabled' }))
  api.apply('namespaces', namespace('ops'))
  api.apply('pods', pod({ name: 'web', namespace: 'shop', node: 'n1', ip: '10.244.1.10', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] }))
  api.apply('pods', pod({ name: 'optout', namespace: 'shop', node: 'n1', ip: '10.244.1.11', app: 'optout', annotations: { 'ferry.dev/mesh': 'disabled' } }))
  api.apply('pods', pod({ name: 'probe', namespace: 'ops', node: 'n1', ip: '10.244.1.12', app: 'probe', annotations: { 'ferry.dev/mesh': 'enabled' } }))
  api.apply('pods', pod({ name: 'plain', namespace: 'ops', node: 'n1', ip: '10.244.1.13', app: 'plain' }))
  api.apply('pods', pod({ name: 'remote', namespace: 'shop', node: 'n2', ip: '10.244.2.10', app: 'web', ports: [{ name: 'http', containerPort: 8080 }] }))
  api.apply('services', service({ name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }))
  const uidOf = (name: string): string => {
    const key = api.keys('pods').find((k) => k.endsWith(`/${name}`))
    return api.get('pods', key as string)?.metadata.uid
  }
  const kubeconfig = join(dir, 'kubeconfig')
  writeTestKubeconfig(kubeconfig, url, TOKEN)
  const options = parseAgentOptions(['--kubernetes', '--kubeconfig', kubeconfig, '--host-proc', '/proc', '--cgroup-root', PATHS.cgroup2,
    '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0', ...(opts.drainGrace === undefined ? [] : ['--drain-grace', opts.drainGrace])], { NODE_NAME: 'n1' })
  const capture = new RecordingCapture()
  const locator = new SwitchableLocator(dir)
  for (const name of ['web', 'optout', 'probe', 'plain', 'remote']) locator.present.add(uidOf(name))
  const { log, lines } = captureLog()
  // No `source` given: the agent selects the kubernetes source from the options.
  const agent = await Agent.start(options, { platform: loopbackPlatform(capture), log, locator, retry: { initialMs: 50, maxMs: 200 } })
  let closed = false
  t.teardown(async () => { if (!closed) await agent.close() })
  const close = agent.close.bind(agent)
  agent.close = async () => { closed = true; await close() }
  return { agent, api, capture, locator, lines, uidOf }
}

t.test('--kubernetes: the API\'s pods of this node, meshed by namespace label or pod annotation, enrolled; later ones located again; deletes unenroll; a 410 re-list loses nothing', async (t) => {
  const { agent, api, capture, locator, lines, uidOf } = await startAgent(t)
  t.match(lines.find((l) => l.msg === 'agent started'), { node: 'n1', clusterFile: null, kubernetes: { hostProc: '/proc', cgroupRoot: PATHS.cgroup2 } })
  await waitFor(() => capture.enrolledUids().length === 2, { timeoutMs: 10_000, what: 'the meshed pods of n1 enrolled' })
  t.same(capture.enrolledUids().sort(), [uidOf('web'), uidOf('probe')].sort(), 'web (namespace label) and probe (pod annotation); not optout (annotation disabled), plain (unlabelled namespace) or remote (node n2)')
  t.ok(api.requestsFor('pods', 'list').some((r) => r.query.fieldSelector === 'spec.nodeName=n1' && r.authorization === `Bearer ${TOKEN}`), 'listed by field selector with the kubeconfig\'s token')
  t.equal(await httpStatus(agent.admin.readyPort, '/healthz/ready'), 200)

  // A pod whose object arrives before its sandbox: pending, then enrolled with no further API change.
  api.apply('pods', pod({ name: 'late', namespace: 'shop', node: 'n1', ip: '10.244.1.14', app: 'late' }))
  await waitFor(() => lines.some((l) => l.msg === 'pod cannot be enrolled' && l.pod === 'shop/late'), { timeoutMs: 5000, what: 'late reported' })
  t.equal(await httpStatus(agent.admin.readyPort, '/healthz/ready'), 200, 'a pod not located yet is that pod\'s state: the node stays ready')
  t.notOk(api.events.some((e) => e.involvedObject?.name === 'late'), 'and it is no Event: every pod starts that way')
  const listsBefore = api.requestsFor('pods', 'list').length
  locator.present.add(uidOf('late'))
  await waitFor(() => capture.calls.includes(`enroll ${uidOf('late')}`), { timeoutMs: 5000, what: 'late located again and enrolled' })
  t.equal(api.requestsFor('pods', 'list').length, listsBefore, 'without a re-list or any change in the cluster')
  t.equal(await httpStatus(agent.admin.readyPort, '/healthz/ready'), 200)

  // A pod that cannot be enrolled for a reason of its own: one Warning Event on it, the node stays ready.
  api.apply('pods', pod({ name: 'broken', namespace: 'shop', node: 'n1', ip: '10.244.1.15', app: 'broken', annotations: { 'ferry.dev/exclude-inbound-ports': 'http' } }))
  locator.present.add(uidOf('broken'))
  await waitFor(() => api.events.some((e) => e.involvedObject?.name === 'broken'), { timeoutMs: 5000, what: 'an Event on the broken pod' })
  t.match(api.events.find((e) => e.involvedObject?.name === 'broken'), {
    type: 'Warning',
    reason: 'FerryEnrollmentFailed',
    message: /exclude-inbound-ports: "http" is not a port number/,
    involvedObject: { kind: 'Pod', namespace: 'shop', name: 'broken', uid: uidOf('broken') },
    source: { component: 'ferry-agent', host: 'n1' },
    metadata: { namespace: 'shop', name: /^broken\./ }
  })
  api.apply('pods', { ...api.get('pods', 'shop/broken'), metadata: { ...api.get('pods', 'shop/broken')?.metadata, labels: { app: 'broken', touched: 'yes' } } })
  await waitFor(() => agent.enroller.status().generation > 0 && lines.filter((l) => l.msg === 'cluster snapshot').length >= 2, { timeoutMs: 5000, what: 'another snapshot' })
  await agent.enroller.settled()
  t.equal(api.events.filter((e) => e.involvedObject?.name === 'broken').length, 1, 'one Event per pod and reason, not one per snapshot or retry')
  t.equal(await httpStatus(agent.admin.readyPort, '/healthz/ready'), 200, 'the node stays ready')
  api.delete('pods', 'shop', 'broken')

  // A delete unenrolls.
  const web = uidOf('web')
  api.delete('pods', 'shop', 'web')
  await waitFor(() => capture.calls.includes(`unenroll ${web}`), { timeoutMs: 5000, what: 'web unenrolled' })

  // History compacted and every watch cut: resumed watches get 410 Gone, the reflectors re-list, nothing is unenrolled.
  const unenrolls = capture.calls.filter((c) => c.startsWith('unenroll')).length
  const lists = api.requestsFor('pods', 'list').length
  api.breakWatches()
  api.apply('pods', pod({ name: 'remote-2', namespace: 'shop', node: 'n2', ip: '10.244.2.11', app: 'web' }))
  api.compact()
  await waitFor(() => api.requestsFor('pods', 'list').length >= lists + 2, { timeoutMs: 10_000, what: 're-lists of both pod collections' })
  await waitFor(() => api.openWatches('pods') === 2, { timeoutMs: 10_000, what: 'pod watches open again' })
  await agent.enroller.settled()
  t.equal(capture.calls.filter((c) => c.startsWith('unenroll')).length, unenrolls, 'no pod unenrolled across the 410 re-list')
  t.same(capture.enrolledUids().sort(), [uidOf('probe'), uidOf('late')].sort())
})

t.test('drain: not ready, listeners closed, a live connection carries on; returns early when it ends, or at the grace period resets and counts the connections left', async (t) => {
  const { agent, api, capture } = await startAgent(t)
  // Sockets are destroyed before the echo servers close (a server's close waits for its connections).
  const sockets = new Set<Socket>()
  t.teardown(() => { for (const s of sockets) s.destroy() })
  const track = (s: Socket): Socket => { sockets.add(s); return s }
  // web's endpoint is an echo server that never closes first.
  const { port: appPort } = await listen(t, '127.0.0.2', (s: Socket) => { track(s); s.on('data', (c) => s.write(`echo ${String(c)}`)); s.on('end', () => s.end()) })
  api.apply('pods', pod({ name: 'web', namespace: 'shop', node: 'n1', ip: '127.0.0.2', app: 'web', ports: [{ name: 'http', containerPort: appPort }] }))
  await waitFor(() => capture.enrolledUids().length === 2, { timeoutMs: 10_000, what: 'enrolled' })
  const webAt = (a: Agent, ip: string) => () => a.enroller.enrolledPods().some((e) => e.plan.pod.name === 'web' && e.plan.pod.podIPs.includes(ip))
  await waitFor(webAt(agent, '127.0.0.2'), { timeoutMs: 10_000, what: 'the new endpoint routed (web re-enrolled at its new IP)' })
  await agent.enroller.settled()
  const probe = agent.enroller.enrolledPods().find((e) => e.plan.pod.name === 'probe')
  const outbound = (probe?.addresses[0] as { port: number }).port
  capture.originalDestination = { address: '127.0.0.2', port: appPort }

  const held = track(connect({ host: '127.0.0.1', port: outbound }))
  let got = ''
  held.on('data', (d) => { got += String(d) })
  held.write('one')
  await waitFor(() => got === 'echo one', { timeoutMs: 5000, what: 'first echo' })

  const drained = agent.drain(60_000)
  await waitFor(() => false === agent.enroller.status().ready, { timeoutMs: 1000, what: 'not ready' })
  t.equal(await httpStatus(agent.admin.readyPort, '/healthz/ready'), 503, 'readiness 503 while draining')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await connectResult(outbound), 'ECONNREFUSED', 'new connections refused')
  held.write('two')
  await waitFor(() => got === 'echo oneecho two', { timeoutMs: 5000, what: 'the live connection still relays' })
  const started = Date.now()
  held.end()
  t.equal(await drained, 0, 'drained: nothing left')
  t.ok(Date.now() - started < 5000, 'returned as soon as the connection ended, long before the grace period')

  // A second agent whose connection never ends: the grace period bounds the drain.
  const second = await startAgent(t)
  // The drain's end resets this app's connection too (the relay passes the reset on).
  const { port: app2 } = await listen(t, '127.0.0.3', (s: Socket) => { track(s); s.on('error', () => {}); s.on('data', (c) => s.write(`echo ${String(c)}`)) })
  second.api.apply('pods', pod({ name: 'web', namespace: 'shop', node: 'n1', ip: '127.0.0.3', app: 'web', ports: [{ name: 'http', containerPort: app2 }] }))
  await waitFor(webAt(second.agent, '127.0.0.3'), { timeoutMs: 10_000, what: 'routed' })
  await second.agent.enroller.settled()
  const port2 = (second.agent.enroller.enrolledPods().find((e) => e.plan.pod.name === 'probe')?.addresses[0] as { port: number }).port
  second.capture.originalDestination = { address: '127.0.0.3', port: app2 }
  const stuck = track(connect({ host: '127.0.0.1', port: port2 }))
  let got2 = ''
  let stuckEnd: string | null = null
  stuck.on('data', (d) => { got2 += String(d) })
  stuck.on('error', (err: NodeJS.ErrnoException) => { stuckEnd ??= err.code ?? err.message })
  stuck.on('end', () => { stuckEnd ??= 'end' })
  stuck.write('x')
  await waitFor(() => got2 === 'echo x', { timeoutMs: 5000, what: 'echo' })
  const t0 = Date.now()
  // Guards the drain's end: the connection left is reset then, by the agent (not by
  // close(), nor by the process's exit) and counted.
  t.equal(await second.agent.drain(300), 1, 'one connection left when the grace period ran out, closed')
  t.ok(Date.now() - t0 >= 290, 'waited the grace period')
  t.ok(second.lines.some((l) => l.msg === DRAIN_CLOSED_MESSAGE && l.connections === 1), 'logged with the count')
  await waitFor(() => stuckEnd, { timeoutMs: 5000, what: 'the client to see its connection end' })
  t.equal(stuckEnd, 'ECONNRESET', 'reset, not ended as if complete')
  t.equal(counter(await second.agent.metrics.text(), 'ferry_drain_closed_connections_total', { worker: '0' }), 1, 'counted in ferry_drain_closed_connections_total')
  await second.agent.close()
  for (const s of sockets) s.destroy()
  t.same(second.capture.calls.filter((c) => c.startsWith('unenroll')), [], 'pins kept: nothing unenrolled from capture')
})
