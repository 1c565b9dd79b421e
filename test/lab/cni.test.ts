import t, { type Test } from 'tap'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Deadline } from '../../src/lab/clock'
import { addNetwork, attachmentFor, cachePath, delNetwork, pluginEnv, pluginRequest } from '../../src/lab/cni/attachment'
import { conflistFor, readConflist, writeNodeCniConfig } from '../../src/lab/cni/conflist'
import { podNetworkReady, setUpPodNetwork } from '../../src/lab/cni/pod-network'
import { primaryResult } from '../../src/lab/cni/primary'
import { readManifests } from '../../src/lab/manifest'
import { planLab, type LabPlan, type PlanPaths } from '../../src/lab/topology'
import { FIXTURES } from './helpers'
import { waitFor } from '../helpers/wait'

// The lab as a CNI runtime (spec 1.0.0), without a lab: the conflist it writes per node,
// the primary's result, what a chained plugin gets (environment, stdin with prevResult
// and runtimeConfig), the result cache, the spec's error object, and ADD retried with
// backoff until it succeeds or the deadline passes. The plugin is a real executable
// (test/fixtures/cni-recorder.js) that records every call.

const RECORDER = join(FIXTURES, '..', '..', 'fixtures', 'cni-recorder.js')
let n = 0
const uids = (): string => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`

interface Setup { plan: LabPlan, records: string, failFile: string, annotations: Record<string, string> }

function setup (t: Test, plugins = 1): Setup {
  const dir = t.testdir({ records: {}, state: {} })
  const records = join(dir, 'records')
  const failFile = join(dir, 'fail')
  const paths: PlanPaths = { cgroup2: '/cg', netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', bpffs: '/bpf', labStateDir: join(dir, 'state') }
  n = 0
  const cniPlugins = Array.from({ length: plugins }, (_, i) => ({
    path: RECORDER,
    type: `rec${i}`,
    config: (node: { name: string }) => ({ recordDir: records, failWhileExists: failFile, node: node.name, capabilities: { 'io.kubernetes.cri.pod-annotations': true, portMappings: true } })
  }))
  const plan = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), { name: 'x', mesh: false, paths, newUid: uids, cniPlugins })
  mkdirSync(plan.logsDir, { recursive: true })
  writeNodeCniConfig(plan)
  return { plan, records, failFile, annotations: { a: 'b', 'lab.ferry.dev/cgroup': join(dir, 'no-such-cgroup') } }
}

function calls (records: string): any[] {
  return readdirSync(records).sort().map((f) => JSON.parse(readFileSync(join(records, f), 'utf8')))
}

t.test('the conflist: the lab\'s primary first, then the chained plugins with their per-node keys', async (t) => {
  const { plan } = setup(t, 2)
  const node = plan.nodes[1]
  t.equal(node.cni.conflist, join(plan.stateDir, 'cni', 'node2', 'net.d', '10-ferry-lab.conflist'))
  t.equal(node.cni.binDir, join(plan.stateDir, 'cni', 'node2', 'bin'))
  const list = readConflist(node.cni)
  t.same(list, conflistFor(node.cni))
  t.equal(list.cniVersion, '1.0.0')
  t.same(list.plugins.map((p) => p.type), ['ferry-lab-primary', 'rec0', 'rec1'])
  t.equal(list.plugins[1].node, 'node2', 'a plugin\'s keys can depend on the node')
  t.ok(existsSync(join(node.cni.binDir, 'rec0')), 'the executable is linked into the node\'s bin dir under its type')
  writeFileSync(node.cni.conflist, JSON.stringify({ ...list, plugins: list.plugins.slice(1) }))
  t.throws(() => readConflist(node.cni), { code: 'FERRY_ERR_LAB_CNI', message: /first plugin must be the lab's primary/ })
})

t.test('ADD: env and stdin as containerd gives them; prevResult chains; the final result is cached; DEL in reverse with it', async (t) => {
  const { plan, records, annotations } = setup(t, 2)
  const pod = plan.pods[1]
  const node = plan.nodes[0]
  const att = attachmentFor(plan, pod, annotations)
  const primary = primaryResult(plan, pod)
  t.same(primary.ips, [{ address: `${pod.ipv4}/32`, gateway: '169.254.1.1', interface: 1 }, { address: `${pod.ipv6}/128`, gateway: 'fe80::1', interface: 1 }])
  t.same(primary.interfaces, [{ name: pod.hostVeth }, { name: 'eth0', sandbox: `/run/netns/${pod.netns}` }])
  t.notOk(podNetworkReady(plan, pod))

  const result = await addNetwork(plan, node, pod, att)
  t.same(result, primary, 'the recorders pass prevResult through')
  t.ok(podNetworkReady(plan, pod), 'the cached result marks the sandbox ready')
  const [first, second] = calls(records)
  t.same(first.env, {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: att.containerId,
    CNI_NETNS: `/run/netns/${pod.netns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=app;K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${att.containerId};K8S_POD_UID=${pod.uid}`,
    CNI_PATH: node.cni.binDir,
    PATH: first.env.PATH
  })
  t.match(att.containerId, /^[0-9a-f]{64}$/)
  t.equal(first.stdin.type, 'rec0')
  t.equal(first.stdin.name, 'ferry-lab')
  t.equal(first.stdin.cniVersion, '1.0.0')
  t.same(first.stdin.prevResult, primary, 'the first chained plugin gets the primary\'s result')
  t.same(first.stdin.runtimeConfig, { 'io.kubernetes.cri.pod-annotations': annotations }, 'only the capabilities the lab provides')
  t.notOk('capabilities' in first.stdin, 'capabilities are not passed on')
  t.equal(second.stdin.type, 'rec1')
  t.same(second.stdin.prevResult, primary, 'the second gets the first\'s result')
  t.same(JSON.parse(readFileSync(cachePath(node.cni, 'ferry-lab', att), 'utf8')), result)

  await delNetwork(plan, node, pod, att)
  const dels = calls(records).slice(2)
  t.same(dels.map((c) => [c.command, c.stdin.type]), [['DEL', 'rec1'], ['DEL', 'rec0']], 'DEL runs the chain in reverse')
  t.same(dels[0].stdin.prevResult, result, 'with the cached ADD result')
  t.notOk(existsSync(cachePath(node.cni, 'ferry-lab', att)), 'and the cache goes')
  const log = readFileSync(node.cni.log, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.same(log.map((l) => [l.command, l.plugin, l.result]), [['ADD', 'rec0', 'ok'], ['ADD', 'rec1', 'ok'], ['DEL', 'rec1', 'ok'], ['DEL', 'rec0', 'ok']])
})

t.test('pluginRequest: reserved keys set by the runtime, prevResult absent when there is none', async (t) => {
  const { plan, annotations } = setup(t)
  const att = attachmentFor(plan, plan.pods[0], annotations)
  const list = conflistFor(plan.nodes[0].cni)
  const req = pluginRequest({ ...list, name: 'other' }, { type: 'p', cniVersion: '0.1.0', name: 'mine', capabilities: { cgroupPath: true, 'io.kubernetes.cri.pod-annotations': false } }, att, null)
  t.same(req, { type: 'p', cniVersion: '1.0.0', name: 'other', runtimeConfig: { cgroupPath: plan.pods[0].cgroup.slice('/cg'.length) } })
  t.same(pluginEnv('DEL', att, '/bin/cni').CNI_COMMAND, 'DEL')
})

t.test('a failing plugin: its error object in the message; ADD retried with backoff until it succeeds, or until the deadline', async (t) => {
  const { plan, records, failFile, annotations } = setup(t)
  const pod = plan.pods[0]
  writeFileSync(failFile, '')
  await t.rejects(addNetwork(plan, plan.nodes[0], pod, attachmentFor(plan, pod, annotations)),
    { code: 'FERRY_ERR_LAB_CNI', message: `CNI ADD of pod app/client: plugin rec0 failed: [code 11] try again later: the test holds this pod back (${failFile} exists)` })
  const failure = JSON.parse(readFileSync(plan.nodes[0].cni.log, 'utf8').trim().split('\n')[0])
  t.match(failure, { command: 'ADD', plugin: 'rec0', result: 'error', code: 11, msg: 'try again later', stderr: 'cni-recorder: failing on purpose\n' })

  const said: string[] = []
  const before = calls(records).length
  const setUp = setUpPodNetwork(plan, pod, annotations, { deadline: new Deadline(30_000), say: (l) => said.push(l) })
  await waitFor(() => calls(records).slice(before).filter((c) => c.failed === true).length >= 2, { timeoutMs: 20_000, what: 'two failed ADDs' })
  rmSync(failFile)
  const result = await setUp
  t.same(result.ips, primaryResult(plan, pod).ips, 'it succeeds once the plugin does')
  t.ok(said.length >= 2, 'each failure reported')
  t.match(said[0], /pod app\/client: CNI ADD of pod app\/client: plugin rec0 failed: \[code 11\] try again later.*; retrying in 500 ms/)
  t.match(said[1], /retrying in 1000 ms/, 'the delay doubles')
  const seq = calls(records).slice(before).map((c) => `${c.command as string}${c.failed === true ? '!' : ''}`)
  t.same(seq.slice(0, 4), ['ADD!', 'DEL', 'ADD!', 'DEL'], 'a failed ADD is followed by a DEL')
  t.equal(seq[seq.length - 1], 'ADD', 'then the ADD that succeeded')

  writeFileSync(failFile, '')
  await t.rejects(setUpPodNetwork(plan, plan.pods[2], annotations, { deadline: new Deadline(1500) }),
    { code: 'FERRY_ERR_LAB_CNI', message: /pod app\/server2 never got its network \(\d attempt\(s\) until the deadline; every call is in .*cni-node2\.log\); last: .*try again later/ })
})

t.test('a plugin that is missing, crashes, or prints no JSON', async (t) => {
  const { plan, annotations } = setup(t)
  const node = plan.nodes[0]
  const pod = plan.pods[0]
  const att = attachmentFor(plan, pod, annotations)
  const bin = join(node.cni.binDir, 'rec0')
  rmSync(bin)
  await t.rejects(addNetwork(plan, node, pod, att), { code: 'FERRY_ERR_LAB_CNI', message: /plugin rec0 failed: no executable .*\/bin\/rec0/ })
  writeFileSync(bin, '#!/bin/sh\necho boom >&2\nexit 3\n', { mode: 0o755 })
  await t.rejects(addNetwork(plan, node, pod, att), { code: 'FERRY_ERR_LAB_CNI', message: /plugin rec0 failed: exit 3: boom/ })
  writeFileSync(bin, '#!/bin/sh\necho hello\n', { mode: 0o755 })
  await t.rejects(addNetwork(plan, node, pod, att), { code: 'FERRY_ERR_LAB_CNI', message: /plugin rec0 failed: its result is not JSON: hello/ })
  writeFileSync(bin, '#!/bin/sh\nexit 0\n', { mode: 0o755 })
  await t.resolves(delNetwork(plan, node, pod, att), 'DEL needs no output')
})
