import t, { type Test } from 'tap'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { loadNativePlatform } from '../../src/agent/platform'
import { PORTS } from '../../src/config/env'
import { openNetns } from '../../src/native'
import { uniquePinRoot, reply, serveFd } from '../capture/helpers/capture-fixture'
import { makePodEnv, nodeClient, type PodEnv } from '../capture/helpers/pod-env'
import { listText, namespaceObj, podObj } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { counter } from '../telemetry/prom-text'
import { netconf, prevResult, runPlugin, scratch } from './plugin-runner'
import { waitFor } from '../helpers/wait'

// The ferry-cni plugin against a real agent (in this process, the native platform: real
// eBPF capture, listeners inside the pod's network namespace) with file discovery, and
// pods that are real network namespaces and cgroups running real programs. The pod's
// object carries no IP and no netns annotation — as on a cluster at CNI ADD time — so
// only the ADD's hints can enroll it.

const SERVER_PORT = 8080

interface Setup { env: PodEnv, dir: string, file: string, agent: Agent, lines: any[], socket: string, stateFile: string }

function clusterItems (env: PodEnv, o: { meshed?: string[], podNamespace?: string, annotations?: Record<string, string> } = {}): Array<Record<string, unknown>> {
  const meshed = o.meshed ?? ['shop']
  return [
    ...['shop', 'ops'].map((n) => namespaceObj(n, meshed.includes(n) ? { 'ferry.dev/mesh': 'enabled' } : {})),
    // Where the pod's cgroup is (the lab's annotation); its netns and IPs only the CNI ADD tells.
    podObj({ name: 'web', namespace: o.podNamespace ?? 'shop', uid: env.id, node: 'n1', phase: 'Pending', annotations: { 'lab.ferry.dev/cgroup': env.cgroupPath, ...o.annotations } })
  ]
}

function writeCluster (file: string, items: Array<Record<string, unknown>>): void {
  writeFileSync(`${file}.tmp`, listText(items))
  renameSync(`${file}.tmp`, file)
}

async function setup (t: Test): Promise<Setup> {
  const env = makePodEnv(t)
  const dir = scratch(t, 'ferry-agent-cni-')
  const file = join(dir, 'cluster.json')
  writeCluster(file, clusterItems(env))
  const socket = join(dir, 'run', 'cni.sock')
  const stateFile = join(dir, 'run', 'cni-state.json')
  const { log, lines } = captureLog()
  const options = parseAgentOptions(['--node', 'n1', '--cluster-file', file, '--pin-root', uniquePinRoot(t), '--admin-port', '0', '--ready-port', '0',
    '--cni-socket', socket, '--cni-state-file', stateFile])
  const agent = await Agent.start(options, { platform: loadNativePlatform(), log, retry: { initialMs: 100, maxMs: 1000 } })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => existsSync(stateFile), { timeoutMs: 5000, what: 'the state file' })
  return { env, dir, file, agent, lines, socket, stateFile }
}

function addConf (s: Setup): string {
  return netconf({ socket: s.socket, stateFile: s.stateFile, timeoutMs: 10_000, prev: prevResult([`${s.env.podIP4}/24`, `${s.env.podIP6}/64`]) })
}

t.test('ADD returns only once the pod is enrolled: the first connection the pod makes is captured, with the IPs from prevResult', async (t) => {
  const s = await setup(t)
  const { env, agent, lines } = s
  const peer = openNetns(env.peerNsPath)
  t.teardown(() => { peer.close() })
  await serveFd(t, peer.listen({ family: 4, address: '0.0.0.0', port: SERVER_PORT }), reply('hello from the peer'))
  await agent.enroller.settled()
  t.same(agent.enroller.enrolledPods(), [], 'before the ADD nothing can enroll the pod: its object has no IP and names no netns')

  const add = await runPlugin({ command: 'ADD', namespace: 'shop', name: 'web', uid: env.id, netns: env.podNsPath, containerId: 'sandbox1' }, addConf(s))
  t.equal(add.code, 0, `ADD succeeds ${add.stdout}${add.stderr}`)
  t.same(add.json, prevResult([`${env.podIP4}/24`, `${env.podIP6}/64`]), 'prevResult passed through')
  // Right after ADD, with no wait of any kind: this is when a pod's first container starts.
  const out = await env.runInPod(nodeClient(env.peerIP4, SERVER_PORT))
  t.equal(JSON.parse(out.stdout).data, 'hello from the peer')
  // Guards the capture gap: without the ADD's enrollment the connection goes straight to the peer and the proxy never logs it.
  await waitFor(() => lines.some((l) => l.msg === 'access'), { timeoutMs: 5000, what: 'the access line of the first connection' })
  t.match(lines.find((l) => l.msg === 'access'), { direction: 'outbound', source: { pod: 'web', namespace: 'shop' }, result: 'ok' })
  const enrolled = agent.enroller.enrolledPods()
  t.equal(enrolled.length, 1)
  t.same(enrolled[0].plan.pod.podIPs, [env.podIP4, env.podIP6], 'the pod\'s IPs come from prevResult (its object has none yet)')
  t.equal(enrolled[0].plan.location.netnsPath, env.podNsPath, 'the netns is CNI_NETNS')
  t.equal(enrolled[0].plan.location.cgroupPath, env.cgroupPath)
  t.match(lines.find((l) => l.msg === 'cni request'), { command: 'add', result: 'enrolled', pod: 'shop/web', uid: env.id, netns: env.podNsPath, podIPs: [env.podIP4, env.podIP6] })
  const metrics = await agent.metrics.text()
  t.equal(counter(metrics, 'ferry_cni_requests_total', { command: 'add', result: 'enrolled' }), 1)

  // The kubelet reports the same IPs later: the plan is unchanged, the pod is not re-enrolled.
  const enrolledAt = enrolled[0].enrolledAt
  writeCluster(s.file, clusterItems(env).map((o: any) => o.kind === 'Pod' ? { ...o, status: { phase: 'Running', podIP: env.podIP4, podIPs: [{ ip: env.podIP4 }, { ip: env.podIP6 }] } } : o))
  await waitFor(() => agent.enroller.status().generation === 2, { timeoutMs: 5000, what: 'the snapshot with the IPs' })
  await agent.enroller.settled()
  t.equal(agent.enroller.enrolledPods()[0].enrolledAt, enrolledAt, 'not re-enrolled when its object catches up')

  const check = await runPlugin({ command: 'CHECK', namespace: 'shop', name: 'web', uid: env.id, netns: env.podNsPath }, addConf(s))
  t.equal(check.code, 0, `CHECK: enrolled (${check.stdout})`)
  const del = await runPlugin({ command: 'DEL', namespace: 'shop', name: 'web', uid: env.id, netns: env.podNsPath }, addConf(s))
  t.equal(del.code, 0)
  await waitFor(() => lines.some((l) => l.msg === 'cni request' && l.command === 'del'), { timeoutMs: 5000, what: 'DEL reached the agent' })
})

t.test('a pod whose port 15006 is already taken: ADD fails with that reason (and the kubelet will retry)', async (t) => {
  const s = await setup(t)
  const squatter = openNetns(s.env.podNsPath)
  t.teardown(() => { squatter.close() })
  // Something of the pod listens on 127.0.0.1:15006 before enrollment.
  await serveFd(t, squatter.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound }), reply('not the proxy'))
  const add = await runPlugin({ command: 'ADD', namespace: 'shop', name: 'web', uid: s.env.id, netns: s.env.podNsPath }, addConf(s))
  t.equal(add.code, 1, 'ADD fails')
  t.equal(add.json.code, 100)
  t.match(add.json.msg, /^the Ferry agent cannot enroll pod shop\/web: pod shop\/web: listen inbound 127\.0\.0\.1:15006 failed: the address is already in use inside the pod: a process of the pod listens on a port Ferry reserves/)
  t.match(add.json.details, /HTTP 409, FERRY_ERR_ENROLL/)
  t.same(s.agent.enroller.enrolledPods(), [], 'nothing half-enrolled')
  t.equal(counter(await s.agent.metrics.text(), 'ferry_cni_requests_total', { command: 'add', result: 'failed' }), 1)
})

t.test('the state file follows the cluster: namespace labels and pod annotations; unmeshed pods then pass without asking the agent', async (t) => {
  const s = await setup(t)
  const state = (): any => JSON.parse(readFileSync(s.stateFile, 'utf8'))
  t.same(state(), { version: 1, node: 'n1', meshedNamespaces: ['shop'], pods: [] })
  t.equal((await import('node:fs')).statSync(s.stateFile).mode & 0o777, 0o600)

  writeCluster(s.file, clusterItems(s.env, { meshed: ['ops'], annotations: { 'ferry.dev/mesh': 'disabled' } }))
  await waitFor(() => state().meshedNamespaces[0] === 'ops', { timeoutMs: 5000, what: 'the label moved to ops' })
  t.same(state(), { version: 1, node: 'n1', meshedNamespaces: ['ops'], pods: [{ namespace: 'shop', name: 'web', uid: s.env.id, mesh: 'disabled' }] })
  t.ok(s.lines.some((l) => l.msg === 'CNI state file written' && l.meshedNamespaces[0] === 'ops'))

  // shop is no longer meshed: its pod's ADD passes at once and the agent is not asked.
  const before = counter(await s.agent.metrics.text(), 'ferry_cni_requests_total', { command: 'add', result: 'enrolled' }) ?? 0
  const add = await runPlugin({ command: 'ADD', namespace: 'shop', name: 'web', uid: s.env.id, netns: s.env.podNsPath }, addConf(s))
  t.equal(add.code, 0)
  t.equal(counter(await s.agent.metrics.text(), 'ferry_cni_requests_total', { command: 'add', result: 'enrolled' }) ?? 0, before, 'no request reached the agent')
  t.same(s.agent.enroller.enrolledPods(), [])

  const writes = s.lines.filter((l) => l.msg === 'CNI state file written').length
  writeCluster(s.file, [...clusterItems(s.env, { meshed: ['ops'], annotations: { 'ferry.dev/mesh': 'disabled' } }), namespaceObj('extra')])
  await waitFor(() => s.agent.enroller.status().generation >= 3, { timeoutMs: 5000, what: 'a snapshot that changes nothing the plugin reads' })
  t.equal(s.lines.filter((l) => l.msg === 'CNI state file written').length, writes, 'not rewritten when nothing it holds changed')
})
