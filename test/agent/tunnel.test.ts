import t, { type Test } from 'tap'
import { renameSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { startCa, tmpDir } from '../controller/harness'
import { listText, namespaceObj, podObj, type PodSpecLite } from '../discovery/fixture'
import { captureLog, listen } from '../proxy/harness'
import { counter } from '../telemetry/prom-text'
import { loopbackPlatform, RecordingCapture } from './loopback-platform'
import { waitFor } from '../helpers/wait'

// Two agents in one process with a real controller (gRPC CA) and the loopback platform:
// n1's client pod reaches n2's server pod through n1's tunnel pool and n2's tunnel
// server (real TLS 1.3 + HTTP/2 on 127.0.0.1), with the certificates the agents got from
// the CA. Pods are 127/8 addresses; each agent's tunnel server is on a port of its own.

t.setTimeout(30_000)
const id = (sa: string): string => `spiffe://cluster.local/ns/app/sa/${sa}`

async function twoAgents (t: Test) {
  const dir = tmpDir(t, 'ferry-agent-tunnel-')
  const backend = await listen(t, '127.0.0.8', (s: Socket) => {
    s.on('data', (c) => { s.write(`server got ${String(c)}`) })
    s.on('end', () => { s.end() })
  })
  const pods: Array<PodSpecLite & { hostIP: string }> = [
    { name: 'client', uid: 'u-client', node: 'n1', serviceAccountName: 'client', ips: ['127.0.0.7'], hostIP: '127.0.0.1' },
    { name: 'server', uid: 'u-server', node: 'n2', serviceAccountName: 'server', ips: ['127.0.0.8'], hostIP: '127.0.0.1', ports: [{ name: 'http', containerPort: backend.port }] }
  ]
  const ca = await startCa(t, { dir, pods })
  const clusterFile = join(dir, 'agents-cluster.json')
  const objs = pods.map((p) => {
    writeFileSync(join(dir, `netns-${p.name}`), '')
    const o = podObj({ ...p, annotations: { 'lab.ferry.dev/netns': join(dir, `netns-${p.name}`), 'lab.ferry.dev/cgroup': `/lab/${p.name}` } }) as { status: Record<string, unknown> }
    o.status = { ...o.status, hostIP: p.hostIP }
    return o
  })
  writeFileSync(`${clusterFile}.tmp`, listText([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), ...objs]))
  renameSync(`${clusterFile}.tmp`, clusterFile)
  const start = async (node: string, peerTunnelPort?: number) => {
    const tokenFile = join(dir, `${node}.token`)
    writeFileSync(tokenFile, `${ca.tokenOf.get(node) as string}\n`, { mode: 0o600 })
    const capture = new RecordingCapture()
    const { log, lines } = captureLog()
    const agent = await Agent.start(parseAgentOptions(['--node', node, '--cluster-file', clusterFile, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0',
      '--ca-address', ca.controller.address, '--ca-root', join(ca.dataDir, 'root-cert.pem'), '--ca-token-file', tokenFile, '--tunnel-port', '0']),
    { platform: loopbackPlatform(capture), log, ...(peerTunnelPort === undefined ? {} : { peerTunnelPort }) })
    t.teardown(async () => { await agent.close() })
    return { agent, capture, lines }
  }
  const n2 = await start('n2')
  const n1 = await start('n1', (await n2.agent.workers.tunnelStats()).port)
  for (const n of [n1, n2]) await waitFor(() => n.agent.enroller.enrolledPods().length === 1 && n.agent.identity?.certificates(n.agent.enroller.enrolledPods().map((e) => e.plan.pod)).ready === true, { timeoutMs: 5000, what: 'enrolled with a certificate' })
  return { n1, n2, serverPort: backend.port }
}

/** A connection into the client pod's outbound listener (as if captured): its original destination is `dst`. */
async function viaClient (n1: { agent: Agent, capture: RecordingCapture }, dst: { address: string, port: number }, body: string): Promise<string> {
  n1.capture.originalDestination = dst
  const listener = n1.agent.enroller.enrolledPods()[0].addresses[0] as { address: string, port: number }
  const s = connect({ host: listener.address, port: listener.port, allowHalfOpen: true })
  const chunks: Buffer[] = []
  return await new Promise((resolve, reject) => {
    s.once('connect', () => { s.end(body) })
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', () => { resolve(Buffer.concat(chunks).toString()) })
    s.once('error', reject)
  })
}

t.test('agents with a CA: a pod on n1 reaches a pod on n2 through the tunnel, with the SVIDs from the CA; both log the principals', async (t) => {
  const { n1, n2, serverPort } = await twoAgents(t)
  t.equal(await viaClient(n1, { address: '127.0.0.8', port: serverPort }, 'ping'), 'server got ping')
  await waitFor(() => n2.lines.some((l) => l.msg === 'access') && n1.lines.some((l) => l.msg === 'access'), { timeoutMs: 3000, what: 'access lines on both nodes' })
  t.match(n2.lines.find((l) => l.msg === 'access'), { direction: 'inbound', source: { pod: 'client' }, source_principal: id('client'), destination_principal: id('server'), mtls: true, result: 'ok' })
  t.match(n1.lines.find((l) => l.msg === 'access'), { direction: 'outbound', source_principal: id('client'), destination_principal: id('server'), mtls: true, result: 'ok' })
  t.match((await n1.agent.workers.tunnelStats()).pool, { sessions: 1, streams: 0, keys: 1 }, 'one pooled session')
  t.equal((await n2.agent.workers.tunnelStats()).server.sessionsAccepted, 1)
  const text = await n2.agent.metrics.text()
  t.equal(counter(text, 'istio_tcp_connections_closed_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: id('client') }), 1)
  t.ok(n1.lines.some((l) => l.msg === 'tunnel server listening'), 'the tunnel server said where it listens')
})

t.test('an agent without a CA says once that it runs in plaintext and has no tunnel', async (t) => {
  const dir = tmpDir(t, 'ferry-agent-noca-')
  const clusterFile = join(dir, 'cluster.json')
  writeFileSync(clusterFile, listText([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' })]))
  const { log, lines } = captureLog()
  const agent = await Agent.start(parseAgentOptions(['--node', 'n1', '--cluster-file', clusterFile, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0']),
    { platform: loopbackPlatform(new RecordingCapture()), log })
  t.teardown(async () => { await agent.close() })
  t.equal(agent.tunnel, null)
  t.equal(lines.filter((l) => /no CA configured/.test(l.msg)).length, 1)
  t.match(lines.find((l) => /no CA configured/.test(l.msg)), { level: 40, msg: /plaintext.*PERMISSIVE/ })
})
