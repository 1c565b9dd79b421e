import t from 'tap'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { listText, namespaceObj, nodeObj, podObj, serviceObj } from '../discovery/fixture'
import { captureLog, listen } from '../proxy/harness'
import { counter } from '../telemetry/prom-text'
import { loopbackPlatform, OPEN_DEBUG, RecordingCapture } from './loopback-platform'
import { waitFor } from '../helpers/wait'

// The agent's control loop against a loopback stand-in platform (see
// loopback-platform.ts): snapshot → enroll local meshed pods → serve → readiness,
// failure and retry, removal, a bad file, shutdown. Connections through an enrolled
// pod's listener use the real proxy.

async function httpGet (port: number, path: string): Promise<{ status: number, body: any, text: string }> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => {
        let body: any = null
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body, text })
      })
    }).on('error', reject)
  })
}

t.test('agent: enrolls local meshed pods, retries a failing one, serves, unenrolls, keeps the last good snapshot, shuts down', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'cluster.json')
  const nsPath = (pod: string): string => join(dir, `netns-${pod}`)
  writeFileSync(nsPath('client'), '')
  // server-a's netns file does not exist yet: its enrollment fails until it appears.
  const { port: appPort } = await listen(t, '127.0.0.2', (s: Socket) => { s.on('data', (c) => s.write(`server-a got ${String(c)}`)); s.on('end', () => s.end()) })
  const lab = (pod: string): Record<string, string> => ({ 'lab.ferry.dev/netns': nsPath(pod), 'lab.ferry.dev/cgroup': `/sys/fs/cgroup/unified/lab/${pod}` })
  const items = [
    nodeObj('n1'),
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    namespaceObj('plain'),
    podObj({ name: 'client', uid: 'u-client', ips: ['10.244.0.5'], annotations: { ...lab('client'), 'ferry.dev/exclude-outbound-ports': '8081' } }),
    podObj({ name: 'server-a', uid: 'u-server-a', ips: ['127.0.0.2'], labels: { app: 'server' }, deployment: 'server', annotations: lab('server-a'), ports: [{ name: 'http', containerPort: appPort }] }),
    podObj({ name: 'elsewhere', uid: 'u-elsewhere', node: 'n2', ips: ['10.244.1.5'], annotations: lab('elsewhere') }),
    podObj({ name: 'unmeshed', uid: 'u-unmeshed', namespace: 'plain', ips: ['10.244.0.6'], annotations: lab('unmeshed') }),
    podObj({ name: 'opted-out', uid: 'u-opted-out', ips: ['10.244.0.7'], annotations: { ...lab('opted-out'), 'ferry.dev/mesh': 'disabled' } }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http' }] })
  ]
  const write = (objs: Array<Record<string, unknown>>): void => { writeFileSync(`${file}.tmp`, listText(objs)); renameSync(`${file}.tmp`, file) }
  write(items)

  const capture = new RecordingCapture()
  const platform = loopbackPlatform(capture)
  const { log, lines } = captureLog()
  const options = parseAgentOptions(['--node', 'n1', '--cluster-file', file, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0'])
  const agent = await Agent.start(options, { platform, log, retry: { initialMs: 50, maxMs: 200 }, adminAuth: OPEN_DEBUG })
  let closed = false
  t.teardown(async () => { if (!closed) await agent.close() })
  const { adminPort, readyPort } = agent.admin

  // 1. server-a cannot be enrolled; client can, and is not held up by it. The node is
  //    ready: one pod's failure is reported (pending, metric), not the node's state.
  await waitFor(() => capture.calls.includes('enroll u-client'), { timeoutMs: 3000, what: 'client enrolled' })
  t.same(capture.calls.slice(0, 3), ['kubelet off', 'live 0', 'reconcile u-client,u-server-a'], 'no probe admission without --kubelet-cgroup; the worker (one, on the main thread) live; capture told which local meshed pods to keep, before enrolling')
  const failing = await httpGet(readyPort, '/healthz/ready')
  t.equal(failing.status, 200)
  t.same(failing.body, { ready: true, generation: 1, enrolled: ['u-client'], pending: ['u-server-a'] })
  t.equal(counter((await httpGet(adminPort, '/metrics')).text, 'ferry_pods_not_enrolled', { reason: 'error' }), 1, 'counted as not enrolled')
  await waitFor(() => lines.filter((l) => l.msg === 'pod enrollment failed').length >= 2, { timeoutMs: 3000, what: 'retries' })
  const failed = lines.find((l) => l.msg === 'pod enrollment failed')
  t.match(failed, { code: 'FERRY_ERR_ENROLL', uid: 'u-server-a', pod: 'app/server-a', errno: 'ENOENT', err: /pod app\/server-a: open netns failed: cannot open .*netns-server-a \(FERRY_ERR_NETNS ENOENT\)/ })
  t.same(capture.specs.get('u-client')?.excludeOutboundPorts, [8081], 'excluded ports handed to capture')
  t.equal(capture.specs.get('u-client')?.cgroupPath, '/sys/fs/cgroup/unified/lab/client')

  // 2. The namespace appears: the retry enrolls it and the node becomes ready.
  writeFileSync(nsPath('server-a'), '')
  await waitFor(() => capture.calls.includes('enroll u-server-a'), { timeoutMs: 3000, what: 'server-a enrolled on retry' })
  const ready = await httpGet(readyPort, '/healthz/ready')
  t.equal(ready.status, 200)
  t.same(ready.body, { ready: true, generation: 1, enrolled: ['u-client', 'u-server-a'], pending: [] })
  t.notOk(capture.calls.some((c) => /elsewhere|unmeshed|opted-out/.test(c)), 'pods of other nodes, unmeshed and opted-out pods are left alone')
  t.equal(counter((await httpGet(adminPort, '/metrics')).text, 'ferry_enrolled_pods'), 2)

  // 3. A connection through client's outbound listener goes VIP → server-a.
  const debug = await httpGet(adminPort, '/debug/pods')
  const client = debug.body.pods.find((p: any) => p.name === 'client')
  t.equal(client.listeners.length, 4, 'outbound and inbound, v4 and v6')
  t.equal(client.netns, nsPath('client'))
  capture.originalDestination = { address: '10.96.0.10', port: 80 }
  const c = connect({ host: '127.0.0.1', port: client.listeners[0].port })
  const reply = await new Promise<string>((resolve, reject) => {
    let text = ''
    c.on('data', (d) => { text += String(d) })
    c.on('end', () => { resolve(text) })
    c.on('error', reject)
    c.end('hello')
  })
  t.equal(reply, 'server-a got hello')
  t.equal(capture.lookups[0][0], BigInt(client.netnsCookie), 'original dst looked up with the pod\'s netns cookie')
  await waitFor(() => lines.some((l) => l.msg === 'access'), { timeoutMs: 3000, what: 'access line' })
  t.match(lines.find((l) => l.msg === 'access'), { direction: 'outbound', source: { pod: 'client' }, destination_service: 'server.app', destination: { pod: 'server-a' }, result: 'ok' })
  const metrics = (await httpGet(adminPort, '/metrics')).text
  t.equal(counter(metrics, 'istio_tcp_connections_closed_total', { source_workload: 'client', destination_service: 'server.app.svc.cluster.local', response_flags: '-' }), 1)

  // 4. server-a goes away: unenrolled from capture, listeners closed.
  const serverA = debug.body.pods.find((p: any) => p.name === 'server-a')
  write(items.filter((o: any) => o.metadata?.name !== 'server-a'))
  await waitFor(() => capture.calls.includes('unenroll u-server-a'), { timeoutMs: 3000, what: 'server-a unenrolled' })
  await agent.enroller.settled()
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: serverA.listeners[0].port })
    s.on('connect', () => { s.destroy(); resolve('connected') })
    s.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
  t.equal(refused, 'ECONNREFUSED', 'its listener is closed')
  t.same((await httpGet(readyPort, '/healthz/ready')).body, { ready: true, generation: 2, enrolled: ['u-client'], pending: [] })

  // 5. A bad file is rejected; the last good snapshot and enrollments stay.
  writeFileSync(`${file}.tmp`, '{"apiVersion":"v1","kind":"List","items":[{"kind":"Pod","metadata":{"name":"x"},"spec":{}}]}')
  renameSync(`${file}.tmp`, file)
  await waitFor(() => lines.some((l) => l.msg === 'cluster file rejected; keeping the last good snapshot'), { timeoutMs: 3000, what: 'rejection logged' })
  t.match(lines.find((l) => l.msg === 'cluster file rejected; keeping the last good snapshot'), { code: 'FERRY_ERR_CONFIG', err: /Pod x \(items\[0\]\): field metadata\.namespace: is required/ })
  t.same((await httpGet(readyPort, '/healthz/ready')).body, { ready: true, generation: 2, enrolled: ['u-client'], pending: [] })

  // 6. Shutdown: listeners and servers closed, capture closed, pins kept (no unenroll).
  const before = capture.calls.length
  await agent.close()
  closed = true
  t.same(capture.calls.slice(before), ['close'], 'capture closed without unenrolling: pins stay')
  t.ok(platform.closedNs.includes(nsPath('client')), 'netns handles closed')
  const adminGone = await new Promise<string>((resolve) => {
    get({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false }, (res) => { resolve(`answered ${res.statusCode}`) }).on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
  t.equal(adminGone, 'ECONNREFUSED', 'admin server closed')
})

t.test('agent: a pod with an invalid excluded-ports annotation is reported and does not keep the node unready, others are enrolled', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'cluster.json')
  for (const p of ['good', 'bad']) writeFileSync(join(dir, p), '')
  const ann = (p: string): Record<string, string> => ({ 'lab.ferry.dev/netns': join(dir, p), 'lab.ferry.dev/cgroup': `lab/${p}` })
  writeFileSync(file, listText([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'good', uid: 'u-good', ips: ['10.244.0.8'], annotations: ann('good') }),
    podObj({ name: 'bad', uid: 'u-bad', ips: ['10.244.0.9'], annotations: { ...ann('bad'), 'ferry.dev/exclude-inbound-ports': '80,http' } })
  ]))
  const capture = new RecordingCapture()
  const { log, lines } = captureLog()
  const agent = await Agent.start(parseAgentOptions(['--node', 'n1', '--cluster-file', file, '--pin-root', '/p', '--admin-port', '0', '--ready-port', '0']), { platform: loopbackPlatform(capture), log })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => capture.calls.includes('enroll u-good'), { timeoutMs: 3000, what: 'good enrolled' })
  t.notOk(capture.calls.includes('enroll u-bad'), 'bad pod not (half-)enrolled')
  t.match(lines.find((l) => l.msg === 'pod cannot be enrolled'), { code: 'FERRY_ERR_ENROLL', cause: 'FERRY_ERR_CONFIG', pod: 'app/bad', err: /exclude-inbound-ports: "http" is not a port number/ })
  t.match(capture.specs.get('u-good')?.cgroupPath, /\/lab\/good$/, 'a relative cgroup annotation is under the cgroup2 root')
  const r = await httpGet(agent.admin.readyPort, '/healthz/ready')
  t.equal(r.status, 200)
  t.same(r.body, { ready: true, generation: 1, enrolled: ['u-good'], pending: ['u-bad'] })
  t.equal(counter((await httpGet(agent.admin.adminPort, '/metrics')).text, 'ferry_pods_not_enrolled', { reason: 'invalid_annotation' }), 1)
})

t.test('agent: the ready port in use is a clear error and nothing is left running', async (t) => {
  const { port } = await listen(t, '0.0.0.0', () => {})
  const capture = new RecordingCapture()
  const { log } = captureLog()
  await t.rejects(Agent.start(parseAgentOptions(['--node', 'n1', '--cluster-file', '/nonexistent', '--pin-root', '/p', '--admin-port', '0', '--ready-port', String(port)]), { platform: loopbackPlatform(capture), log }),
    { code: 'FERRY_ERR_LISTEN', errno: 'EADDRINUSE', message: new RegExp(`--ready-port ${port}: cannot listen`) })
  t.same(capture.calls, ['kubelet off', 'live 0', 'close'], 'capture closed again')
})

t.test('agent: --kubelet-cgroup goes to capture, probe ports with each pod; ferry_kubelet_probes_total per enrolled pod, gone with the pod', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-probes-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'cluster.json')
  const lab = (pod: string): Record<string, string> => { writeFileSync(join(dir, `netns-${pod}`), ''); return { 'lab.ferry.dev/netns': join(dir, `netns-${pod}`), 'lab.ferry.dev/cgroup': `lab/${pod}` } }
  const web = podObj({ name: 'web', uid: 'u-web', ips: ['10.244.0.8'], annotations: lab('web'), ports: [{ name: 'http', containerPort: 8080 }], probes: { readinessProbe: { httpGet: { port: 'http' } }, livenessProbe: { tcpSocket: { port: 8081 } } } })
  const db = podObj({ name: 'db', uid: 'u-db', ips: ['10.244.0.9'], annotations: lab('db') })
  const write = (objs: Array<Record<string, unknown>>): void => { writeFileSync(`${file}.tmp`, listText(objs)); renameSync(`${file}.tmp`, file) }
  write([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), web, db])
  const capture = new RecordingCapture()
  const { log, lines } = captureLog()
  const agent = await Agent.start(parseAgentOptions(['--node', 'n1', '--cluster-file', file, '--pin-root', '/p', '--admin-port', '0', '--ready-port', '0', '--kubelet-cgroup', '/sys/fs/cgroup/lab/n1/kubelet']), { platform: loopbackPlatform(capture), log })
  t.teardown(async () => { await agent.close() })
  t.equal(capture.calls[0], 'kubelet /sys/fs/cgroup/lab/n1/kubelet', 'probe admission on, before any pod')
  t.ok(lines.some((l) => l.msg.startsWith('probe admission')), 'said once at start')
  await waitFor(() => capture.specs.size === 2, { timeoutMs: 3000, what: 'both enrolled' })
  t.same(capture.specs.get('u-web')?.probePorts, [8080, 8081], 'the named probe port resolved')
  t.same(capture.specs.get('u-db')?.probePorts, [])
  capture.probes.set('u-web', { admitted: 7, notProbePort: 2, expired: 0 })
  capture.probes.set('u-db', { admitted: 0, notProbePort: 1, expired: 0 })
  let text = (await httpGet(agent.admin.adminPort, '/metrics')).text
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'web', result: 'admitted' }), 7)
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'web', result: 'not_probe_port' }), 2)
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'db', result: 'not_probe_port' }), 1)
  write([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), web])
  await waitFor(() => capture.calls.includes('unenroll u-db'), { timeoutMs: 3000, what: 'db unenrolled' })
  capture.probes.delete('u-db')
  text = (await httpGet(agent.admin.adminPort, '/metrics')).text
  t.notMatch(text, /pod="db"/, 'no series left for a pod that is gone')
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'web', result: 'admitted' }), 7)
  // The probe ports are part of the plan's fingerprint: a change re-enrolls the pod with the new ones.
  const changed = podObj({ name: 'web', uid: 'u-web', ips: ['10.244.0.8'], annotations: lab('web'), ports: [{ name: 'http', containerPort: 8080 }], probes: { readinessProbe: { grpc: { port: 9090 } } } })
  write([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), changed])
  await waitFor(() => capture.calls.filter((c) => c === 'enroll u-web').length === 2, { timeoutMs: 3000, what: 'web enrolled again' })
  t.same(capture.specs.get('u-web')?.probePorts, [9090], 'the new probe ports handed to capture')
  const readyOnly = podObj({ name: 'web', uid: 'u-web', ips: ['10.244.0.8'], annotations: lab('web'), ports: [{ name: 'http', containerPort: 8080 }], probes: { readinessProbe: { grpc: { port: 9090 } } }, ready: false })
  write([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), readyOnly])
  await waitFor(() => agent.routes.index.podByIP('10.244.0.8')?.ready === false, { timeoutMs: 3000, what: 'not ready' })
  await agent.enroller.settled()
  t.equal(capture.calls.filter((c) => c === 'enroll u-web').length, 2, 'readiness is not part of the fingerprint: no re-enrollment')
})
