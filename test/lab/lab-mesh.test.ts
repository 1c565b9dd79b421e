import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { labDown } from '../../src/lab/down'
import { execArgv } from '../../src/lab/exec'
import type { LabState } from '../../src/lab/state'
import { labStatus } from '../../src/lab/status'
import { restartController } from '../../src/lab/restart'
import { labUp, labWorkersFromEnv } from '../../src/lab/up'
import { cpuQuota, defaultWorkers } from '../../src/agent/worker-count'
import { everythingLeft, labFerryArgv, forceDown, IS_ROOT, isMeshBuilt, manifestFile, recordedPids, REPO, runArgv } from './helpers'
import { uniqueLabName } from '../helpers/names'

// The lab with the mesh: one controller (the CA) in the underlay namespace, one agent per
// node, each launched in its own cgroup, and `up` returns only once the agents have
// enrolled the meshed pods and hold their certificates. The agents and the controller
// run from source here (so this needs the native addon and eBPF objects built, not dist/).

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const opts = skip === undefined ? {} : { skip }

const lab = uniqueLabName('lmsh')
let state: LabState

t.before(async () => {
  if (skip !== undefined) return
  state = await labUp({ name: lab, files: [join(REPO, 'examples/hello/hello.yaml')], mesh: true, timeoutMs: 60_000, ferryArgv: labFerryArgv() })
})
t.teardown(async () => { await forceDown(lab) })

t.test('each node runs an agent in its own cgroup, in the node\'s namespace, ready', opts, async (t) => {
  const node = state.plan.nodes[0]
  const pid = state.pids[`node/${node.name}`]
  t.ok(pid > 0)
  const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))
  t.equal(cgroup, `0::${node.agentCgroup.slice(PATHS.cgroup2.length)}`, 'the agent cgroup, not a pod\'s')
  const netns = runArgv(['readlink', `/proc/${pid}/ns/net`]).stdout
  const nodeNetns = runArgv(['nsenter', `--net=/var/run/netns/${node.netns}`, 'readlink', '/proc/self/ns/net']).stdout
  t.equal(netns, nodeNetns, 'in the node\'s network namespace')
  t.ok(existsSync(node.pinRoot), `pins under ${node.pinRoot}`)
  const status = await labStatus(state)
  t.match(status.nodes[0].agent, { pid, alive: true, ready: true })
})

// Guards FERRY_LAB_WORKERS (src/lab/up.ts): `up` without --workers gives the agents the
// variable's count (npm run test:workers-1 runs the lab tests so), else the agent's own default.
t.test('the agents run FERRY_LAB_WORKERS data-path workers when up is given no --workers', opts, async (t) => {
  const fromEnv = labWorkersFromEnv()
  t.equal(state.plan.workers, fromEnv, `the plan: ${String(fromEnv ?? 'the agent\'s default')}`)
  const node = state.plan.nodes[0]
  const started = readFileSync(node.agentLog, 'utf8').split('\n').filter((l) => l.includes('"msg":"agent started"')).map((l) => JSON.parse(l))
  t.equal(started.length, 1)
  // The agent's default, from its own cgroup's CPU quota (the test's may differ), as the agent reads it.
  const pid = state.pids[`node/${node.name}`]
  t.equal(started[0].workers, fromEnv ?? defaultWorkers(availableParallelism(), cpuQuota(`/proc/${pid}/cgroup`)), 'the agent runs that many')
})

t.test('the controller runs in its own cgroup in the underlay\'s namespace; agents hold certificates from it', opts, async (t) => {
  const ca = state.plan.controller
  if (ca == null) throw new Error('no controller in the plan')
  const pid = state.pids.controller
  t.ok(pid > 0, 'its pid is recorded')
  const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))
  t.equal(cgroup, `0::${ca.cgroup.slice(PATHS.cgroup2.length)}`, 'its own cgroup, under the lab\'s')
  const netns = runArgv(['readlink', `/proc/${pid}/ns/net`]).stdout
  t.equal(netns, runArgv(['nsenter', `--net=/var/run/netns/${state.plan.underlay.netns}`, 'readlink', '/proc/self/ns/net']).stdout, 'in the underlay\'s namespace')
  t.equal(runArgv(['readlink', '/proc/self/ns/net']).stdout === netns, false, 'not in the host\'s')
  t.notOk(runArgv(['ip', '-o', 'addr', 'show']).stdout.includes(ca.address), 'its address is on no interface of the host\'s namespace')
  t.match(readFileSync(ca.log, 'utf8'), /"msg":"controller listening"/, `it logs to ${ca.log}`)
  const status = await labStatus(state)
  t.match(status.controller, { address: `${ca.address}:${ca.port}`, pid, alive: true, ready: true })
  const node = state.plan.nodes[0]
  const ready = runArgv(['nsenter', `--net=/var/run/netns/${node.netns}`, 'curl', '-s', 'http://127.0.0.1:15021/healthz/ready'])
  t.same(JSON.parse(ready.stdout).certificates, { ready: true, identities: ['spiffe://cluster.local/ns/hello/sa/default', 'spiffe://cluster.local/ns/hello/sa/hello'], pending: [], failing: [] })
})

t.test('restart --controller: a new controller on the same address and root; the agents stay ready', opts, async (t) => {
  const before = state.pids.controller
  const r = await restartController(state, { signal: 'SIGTERM', timeoutMs: 30_000, ferryArgv: labFerryArgv() })
  t.ok(r.oldPids >= 1)
  t.not(r.newPid, before)
  t.equal(state.pids.controller, r.newPid)
  const status = await labStatus(state)
  t.match(status.controller, { pid: r.newPid, alive: true, ready: true })
  t.ok(status.nodes.every((n) => n.agent?.ready === true), 'agents still ready')
  t.match(readFileSync(state.plan.controller?.log ?? '', 'utf8'), /"msg":"loaded the CA root"/, 'the same root, from the data dir')
})

t.test('a pod reaches a Service by name through the mesh (the cluster IP is on no interface)', opts, async (t) => {
  const hosts = readFileSync(`/etc/netns/${state.plan.pods[1].netns}/hosts`, 'utf8')
  const vip = state.plan.services[0].clusterIPs[0]
  t.match(hosts, new RegExp(`^${vip.replace(/\./g, '\\.')}\\thello hello\\.hello`, 'm'), 'names resolve to the cluster IP')
  const r = runArgv(execArgv(state, { kind: 'pod', namespace: 'hello', name: 'client' }, ['curl', '-sS', '-4', '--max-time', '5', 'http://hello:8080/']))
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^hello from server to /)
})

t.test('down kills the agents and removes their pin dirs', opts, async (t) => {
  const pids = recordedPids(lab)
  const pinRoot = state.plan.nodes[0].pinRoot
  await labDown(lab)
  t.notOk(existsSync(pinRoot), 'pin dir gone')
  t.same(everythingLeft(lab, pids), [])
})

t.test('a failed up with the mesh keeps the controller\'s log but not the node tokens or the CA key', opts, async (t) => {
  const name = uniqueLabName('lmshf')
  t.teardown(async () => { await forceDown(name) })
  const file = manifestFile('apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: m, labels: {ferry.dev/mesh: enabled}}\n---\n' +
    'apiVersion: v1\nkind: Pod\nmetadata: {name: crash, namespace: m}\nspec:\n  nodeName: node1\n  containers: [{name: main, command: [sh, -c, "exit 3"]}]\n')
  await t.rejects(labUp({ name, files: [file], mesh: true, timeoutMs: 60_000, ferryArgv: labFerryArgv() }), { code: 'FERRY_ERR_LAB', message: /exited with code 3/ })
  const failed = join(PATHS.labStateDir, `${name}.failed`)
  t.match(readFileSync(join(failed, 'logs', 'controller.log'), 'utf8'), /controller listening/, 'the controller\'s log is kept')
  t.notOk(existsSync(join(failed, 'tokens')), 'no node tokens')
  t.notOk(existsSync(join(failed, 'ca', 'root-key.pem')), 'no CA key')
  t.ok(existsSync(join(failed, 'ca', 'root-cert.pem')), 'the public root stays')
  t.same(everythingLeft(name), [])
  await labDown(name)
})
