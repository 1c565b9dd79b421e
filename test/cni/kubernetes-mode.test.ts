import t from 'tap'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { loadNativePlatform } from '../../src/agent/platform'
import { PATHS } from '../../src/config/env'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { ListWatchServer } from '../../src/lab/api-server'
import { openNetns } from '../../src/native'
import { reply, serveFd, uniquePinRoot } from '../capture/helpers/capture-fixture'
import { makePodEnv, nodeClient, removeCgroup } from '../capture/helpers/pod-env'
import { namespace, pod, uid } from '../kubernetes/objects'
import { captureLog } from '../proxy/harness'
import { netconf, prevResult, runPlugin, scratch } from './plugin-runner'
import { writeTestKubeconfig } from '../kubernetes/kubeconfig'
import { waitFor } from '../helpers/wait'
import { uniqueName } from '../helpers/names'

// `ferry agent --kubernetes --cni-socket …` as on a node: discovery from the list + watch
// server (src/lab/api-server.ts: the protocol, not a cluster), the `kubelet` locator, the
// native platform. The plugin's ADD arrives before the agent's watch has shown the pod
// (on a cluster the kubelet may run the sandbox moments after the pod is bound): the
// agent waits for the watch, then enrolls the pod in the netns the ADD named, in the
// pod cgroup the kubelet's layout gives — no process of the pod exists yet — and with
// the IPs of prevResult, since the pod's object has none yet.

const TOKEN = 'cni-agent-token'

t.before(async () => { await loadKubernetesClient() })

t.test('--kubernetes: an ADD for a pod the agent has not seen waits for the watch, then enrolls it with the ADD\'s netns and IPs', async (t) => {
  const env = makePodEnv(t)
  const dir = scratch(t, 'ferry-cni-k8s-')
  // A kubelet-style cgroup tree (systemd driver, BestEffort) under a root of this test's own.
  const podUid = uid('pod-shop-web')
  const root = join(PATHS.cgroup2, uniqueName('fct-kubelet'))
  const levels = ['kubepods.slice', 'kubepods-besteffort.slice', `kubepods-besteffort-pod${podUid.replace(/-/g, '_')}.slice`]
  const podCgroup = join(root, ...levels)
  mkdirSync(podCgroup, { recursive: true })
  t.teardown(() => { for (let i = levels.length; i >= 0; i--) removeCgroup(join(root, ...levels.slice(0, i))) })

  const api = new ListWatchServer(TOKEN)
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  api.apply('namespaces', namespace('shop', { 'ferry.dev/mesh': 'enabled' }))
  const kubeconfig = join(dir, 'kubeconfig')
  writeTestKubeconfig(kubeconfig, url, TOKEN)
  const socket = join(dir, 'run', 'cni.sock')
  const stateFile = join(dir, 'run', 'cni-state.json')
  const { log, lines } = captureLog()
  const options = parseAgentOptions(['--kubernetes', '--kubeconfig', kubeconfig, '--host-proc', '/proc', '--cgroup-root', root,
    '--pin-root', uniquePinRoot(t), '--admin-port', '0', '--ready-port', '0', '--cni-socket', socket, '--cni-state-file', stateFile], { NODE_NAME: 'n1' })
  const agent = await Agent.start(options, { platform: loadNativePlatform(), log, retry: { initialMs: 100, maxMs: 1000 } })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => existsSync(stateFile), { timeoutMs: 15_000, what: 'the first snapshot (state file written)' })

  const peer = openNetns(env.peerNsPath)
  t.teardown(() => { peer.close() })
  await serveFd(t, peer.listen({ family: 4, address: '0.0.0.0', port: 8080 }), reply('hello from the peer'))

  const prev = prevResult([`${env.podIP4}/24`, `${env.podIP6}/64`])
  const adding = runPlugin({ command: 'ADD', namespace: 'shop', name: 'web', uid: podUid, netns: env.podNsPath, containerId: 'sandbox-1' },
    netconf({ socket, stateFile, prev, timeoutMs: 20_000 }))
  await waitFor(() => lines.some((l) => l.msg === 'cni: waiting for discovery to show the pod' && l.pod === 'shop/web'), { timeoutMs: 10_000, what: 'the agent waiting for the pod' })
  // Guards the wait: without it the ADD would fail now, and the pod would start unenrolled on the kubelet's retry … or never.
  api.apply('pods', pod({ name: 'web', namespace: 'shop', node: 'n1', app: 'web', phase: 'Pending' }))
  const add = await adding
  t.equal(add.code, 0, `ADD succeeds once the watch shows the pod: ${add.stdout}${add.stderr}`)
  t.same(add.json, prev)

  const [enrolled] = agent.enroller.enrolledPods()
  t.match(enrolled?.plan.location, { netnsPath: env.podNsPath, cgroupPath: podCgroup }, 'the ADD\'s netns; the cgroup from the kubelet\'s layout, with no pod process to find it from')
  t.same(enrolled?.plan.pod.podIPs, [env.podIP4, env.podIP6], 'the IPs of prevResult')
  await waitFor(() => lines.some((l) => l.msg === 'pod enrolled' && l.component === 'enroll'), { timeoutMs: 5000, what: 'the enrollment logged' })
  t.match(lines.find((l) => l.msg === 'pod enrolled' && l.component === 'enroll'), { pod: 'shop/web', cni: true }, 'logged as enrolled from its CNI ADD')

  // The pod's first process, in its kubelet cgroup: captured from its first connection.
  const out = await env.runInPod(nodeClient(env.peerIP4, 8080), { cgroupPath: podCgroup })
  t.equal(JSON.parse(out.stdout).data, 'hello from the peer')
  await waitFor(() => lines.some((l) => l.msg === 'access'), { timeoutMs: 5000, what: 'access line' })
  t.match(lines.find((l) => l.msg === 'access'), { direction: 'outbound', source: { pod: 'web', namespace: 'shop' }, result: 'ok' })

  // An ADD for a pod the watch never shows fails at its deadline, with the reason.
  const missing = await runPlugin({ command: 'ADD', namespace: 'shop', name: 'ghost', uid: uid('pod-shop-ghost'), netns: env.podNsPath }, netconf({ socket, stateFile, prev, timeoutMs: 1500 }))
  t.equal(missing.code, 1)
  t.match(missing.json, { code: 100, msg: /pod shop\/ghost \(uid [0-9a-f-]+\) did not appear in the agent's cluster snapshot before the plugin's timeout \(1500 ms\)/, details: /HTTP 504, FERRY_ERR_CNI/ })
})
