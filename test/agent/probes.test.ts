import t from 'tap'
import { execFileSync } from 'node:child_process'
import { renameSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { loadNativePlatform } from '../../src/agent/platform'
import { KUBELET_HOOK } from '../../src/capture/programs'
import { BpfLink, openNetns } from '../../src/native'
import { serveFd, uniquePinRoot } from '../capture/helpers/capture-fixture'
import { makeCgroup, makePodEnv, nodeClient } from '../capture/helpers/pod-env'
import { startCa, tmpDir } from '../controller/harness'
import { listText, namespaceObj, podObj, type PodSpecLite } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { counter } from '../telemetry/prom-text'
import { waitFor } from '../helpers/wait'

// A real agent in this process (the native platform: eBPF capture, listeners inside the
// pod's netns) with a real controller (so pods are STRICT), and a real pod (netns +
// cgroup) whose app listens on 8080 (its readiness probe's port, by name) and 9090. The
// peer namespace plays the node: a process there in the stand-in kubelet cgroup given to
// --kubelet-cgroup reaches the app on 8080; a process of another cgroup (a hostNetwork
// pod) or the kubelet on 9090 is refused by the proxy as denied_plaintext. While the agent
// is down the probe still reaches the app (everything else is refused: fail closed), and
// a new agent updates the pinned kubelet link in place. Without the feature the kubelet's
// probe is denied_plaintext like the rest (the first assertion fails).

t.setTimeout(120_000)

const PROBE = 8080
const OTHER = 9090

async function metrics (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve(text) })
    }).on('error', reject)
  })
}

function cgroupAttachments (cgroupPath: string): string[] {
  const json = JSON.parse(execFileSync('bpftool', ['cgroup', 'show', cgroupPath, '-j']).toString().trim() || '[]') as Array<{ attach_type: string }>
  return json.map((a) => a.attach_type).sort()
}

t.test('--kubelet-cgroup: a STRICT pod\'s probe port is open to the kubelet only; probes survive an agent restart', async (t) => {
  const env = makePodEnv(t)
  const kubelet = makeCgroup(t, 'fct-kubelet')
  const hostNetworkPod = makeCgroup(t, 'fct-hostnet')
  const pinRoot = uniquePinRoot(t)
  const dir = tmpDir(t, 'ferry-agent-probes-')
  const web: PodSpecLite = { name: 'web', uid: env.id, node: 'n1', serviceAccountName: 'web', ips: [env.podIP4, env.podIP6], ports: [{ name: 'http', containerPort: PROBE }] }
  const ca = await startCa(t, { dir, pods: [web] })
  const tokenFile = join(dir, 'n1.token')
  writeFileSync(tokenFile, `${ca.tokenOf.get('n1') as string}\n`, { mode: 0o600 })
  const clusterFile = join(dir, 'agent-cluster.json')
  const pod = podObj({ ...web, annotations: { 'lab.ferry.dev/netns': env.podNsPath, 'lab.ferry.dev/cgroup': env.cgroupPath }, probes: { readinessProbe: { httpGet: { path: '/', port: 'http' } } } })
  writeFileSync(`${clusterFile}.tmp`, listText([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), pod]))
  renameSync(`${clusterFile}.tmp`, clusterFile)

  // The application, in the pod's netns.
  const ns = openNetns(env.podNsPath)
  t.teardown(() => { ns.close() })
  const app = (s: Socket): void => { s.on('error', () => {}); s.end('app') }
  for (const port of [PROBE, OTHER]) await serveFd(t, ns.listen({ family: 4, address: '0.0.0.0', port }), app)

  const options = parseAgentOptions(['--node', 'n1', '--cluster-file', clusterFile, '--pin-root', pinRoot, '--admin-port', '0', '--ready-port', '0',
    '--ca-address', ca.controller.address, '--ca-root', join(ca.dataDir, 'root-cert.pem'), '--ca-token-file', tokenFile, '--tunnel-port', '0', '--kubelet-cgroup', kubelet])
  const running = new Set<Agent>()
  t.teardown(async () => { for (const a of running) await a.close() })
  const stop = async (agent: Agent): Promise<void> => { running.delete(agent); await agent.close() }
  const start = async (): Promise<{ agent: Agent, lines: any[] }> => {
    const { log, lines } = captureLog()
    const agent = await Agent.start(options, { platform: loadNativePlatform(), log })
    running.add(agent)
    await waitFor(() => agent.enroller.status().ready && agent.identity?.certificates(agent.enroller.enrolledPods().map((e) => e.plan.pod)).ready === true, { timeoutMs: 10_000, what: 'enrolled with a certificate' })
    return { agent, lines }
  }
  /** Connects from the node namespace as a process of `cgroup`. */
  const from = async (cgroup: string, port: number): Promise<{ data?: string, error?: string }> => {
    const r = await env.runInPod(nodeClient(env.podIP4, port), { netnsPath: env.peerNsPath, cgroupPath: cgroup })
    return JSON.parse(r.stdout)
  }
  const refused = (r: { data?: string, error?: string }): boolean => r.data === '' || r.error === 'ECONNRESET'

  let { agent, lines } = await start()
  t.equal(agent.enroller.enrolledPods()[0]?.plan.pod.probePorts[0], PROBE, 'the probe port, named in the pod spec')

  t.equal((await from(kubelet, PROBE)).data, 'app', 'the kubelet reaches the app on its probe port')
  t.ok(refused(await from(hostNetworkPod, PROBE)), 'a hostNetwork pod on the same port is refused')
  t.ok(refused(await from(kubelet, OTHER)), 'the kubelet on a port no probe names is refused')
  await waitFor(() => lines.filter((l) => l.msg === 'access').length >= 2, { timeoutMs: 5000, what: 'two access lines' })
  t.match(lines.filter((l) => l.msg === 'access'), [{ direction: 'inbound', result: 'denied_plaintext', original_destination: `${env.podIP4}:${PROBE}` }, { direction: 'inbound', result: 'denied_plaintext', original_destination: `${env.podIP4}:${OTHER}` }], 'only the two refused connections went through the proxy')
  const text = await metrics(agent.admin.adminPort)
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'web', result: 'admitted' }), 1)
  t.equal(counter(text, 'ferry_kubelet_probes_total', { namespace: 'app', pod: 'web', result: 'not_probe_port' }), 1)
  t.equal(counter(text, 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: 'NR' }), 2)

  const linkPath = join(pinRoot, `link_${KUBELET_HOOK.prog}`)
  const linkInfo = (): { id: number, progId: number } => { const l = BpfLink.openPinned(linkPath); const { id, progId } = l.info(); l.close(); return { id, progId } }
  const before = linkInfo()
  await stop(agent)
  t.equal((await from(kubelet, PROBE)).data, 'app', 'agent down: the probe still reaches the app')
  t.equal((await from(hostNetworkPod, PROBE)).error, 'ECONNREFUSED', 'agent down: anything else is refused (fail closed)')

  ;({ agent, lines } = await start())
  const after = linkInfo()
  t.equal(after.id, before.id, 'the restarted agent kept the kubelet link')
  t.not(after.progId, before.progId, 'and updated it to its program')
  t.same(cgroupAttachments(kubelet), ['cgroup_sock_ops'], 'attached once')
  t.equal((await from(kubelet, PROBE)).data, 'app', 'probes go on')
  t.ok(refused(await from(hostNetworkPod, PROBE)), 'a hostNetwork pod is still refused')
  await stop(agent)
})
