import t from 'tap'
import { renameSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { loadNativePlatform } from '../../src/agent/platform'
import { openNetns } from '../../src/native'
import { serveFd, uniquePinRoot } from '../capture/helpers/capture-fixture'
import { kernelBtfWithout } from '../capture/helpers/kernel-btf'
import { makeCgroup, makePodEnv } from '../capture/helpers/pod-env'
import { tmpDir } from '../controller/harness'
import { listText, namespaceObj, podObj } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { counter } from '../telemetry/prom-text'
import { waitFor } from '../helpers/wait'
import { OPEN_DEBUG } from './loopback-platform'

// A real agent in this process (the native platform: eBPF capture, listeners in the pod's
// netns) on a kernel whose BTF lacks a field the sockmap shortcut reads (a copy of this
// kernel's BTF with sk_psock.msg_tot_len renamed, given to the platform): the agent
// starts, says once why the shortcut is off, reports it in /metrics and /debug/capture,
// and a plaintext connection to the pod goes through the proxy and back by TCP, its hop
// refused. Without the check the shortcut would be on (this kernel has the field).

t.setTimeout(120_000)

const APP_PORT = 8080
const ROUNDS = 4

async function httpText (port: number, path: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve(text) })
    }).on('error', reject)
  })
}

/** A client of several request/answer rounds (the hop shortcut is asked for once a connection is busy). */
function roundsClient (host: string, port: number): string[] {
  const src = `
const net = require('net')
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} })
let round = 0, buf = ''
s.on('connect', () => s.write('ping 0'))
s.on('data', (d) => {
  buf += d
  if (buf !== 'pong ' + round) return
  buf = ''
  if (++round === ${ROUNDS}) { console.log(JSON.stringify({ rounds: round })); process.exit(0) }
  setTimeout(() => s.write('ping ' + round), 20)
})
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code, rounds: round })); process.exit(0) })
setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT', rounds: round })); process.exit(0) }, 10000)
`
  return [process.execPath, '-e', src]
}

t.test('a kernel whose BTF lacks a field sk_msg reads: no shortcut, said and shown, traffic by TCP', async (t) => {
  const env = makePodEnv(t)
  const client = makeCgroup(t, 'fct-client')
  const dir = tmpDir(t, 'ferry-agent-sockmap-btf-')
  const clusterFile = join(dir, 'agent-cluster.json')
  const pod = podObj({ name: 'web', uid: env.id, node: 'n1', ips: [env.podIP4, env.podIP6], ports: [{ name: 'tcp', containerPort: APP_PORT }], annotations: { 'lab.ferry.dev/netns': env.podNsPath, 'lab.ferry.dev/cgroup': env.cgroupPath } })
  writeFileSync(`${clusterFile}.tmp`, listText([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), pod]))
  renameSync(`${clusterFile}.tmp`, clusterFile)

  // The application: answers each "ping N" with "pong N".
  const ns = openNetns(env.podNsPath)
  t.teardown(() => { ns.close() })
  await serveFd(t, ns.listen({ family: 4, address: '0.0.0.0', port: APP_PORT }), (s: Socket) => {
    s.on('error', () => {})
    s.on('data', (d) => { s.write(String(d).replace('ping', 'pong')) })
    s.on('end', () => s.end())
  })

  const options = parseAgentOptions(['--node', 'n1', '--cluster-file', clusterFile, '--pin-root', uniquePinRoot(t), '--admin-port', '0', '--ready-port', '0', '--workers', '1'])
  const { log, lines } = captureLog()
  const agent = await Agent.start(options, { platform: loadNativePlatform({ kernelBtf: kernelBtfWithout(t, 'msg_tot_len') }), log, adminAuth: OPEN_DEBUG })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => agent.enroller.enrolledPods().length === 1, { timeoutMs: 10_000, what: 'the pod enrolled' })

  const warned = lines.filter((l) => l.code === 'FERRY_ERR_SOCKMAP_BTF')
  t.equal(warned.length, 1, 'said once')
  t.match(warned[0], { level: 40, missing: ['sk_psock.msg_tot_len'], msg: /sockmap shortcut off/ })

  const r = await env.runInPod(roundsClient(env.podIP4, APP_PORT), { netnsPath: env.peerNsPath, cgroupPath: client })
  t.same(JSON.parse(r.stdout), { rounds: ROUNDS }, 'a connection to the pod went through the proxy and back, every round')
  await waitFor(() => lines.some((l) => l.msg === 'access' && l.result === 'ok'), { timeoutMs: 5000, what: 'the access line' })

  const text = await httpText(agent.admin.adminPort, '/metrics')
  t.match(text, /ferry_sockmap_enabled\{reason="FERRY_ERR_SOCKMAP_BTF"\} 0/, '/metrics: off, and why')
  t.ok(counter(text, 'ferry_sockmap_shortcuts_total', { kind: 'hop', result: 'refused' }) >= 1, 'the busy hop asked for the shortcut and was refused')
  t.equal(counter(text, 'ferry_sockmap_shortcuts_total', { kind: 'hop', result: 'ok' }), 0)
  t.equal(counter(text, 'ferry_sockmap_bytes_total'), 0, 'nothing took the shortcut')
  const debug = JSON.parse(await httpText(agent.admin.adminPort, '/debug/capture'))
  t.match(debug, { sockmap: { enabled: false, code: 'FERRY_ERR_SOCKMAP_BTF', missing: ['sk_psock.msg_tot_len'] } }, '/debug/capture: off, and why')
})
