import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { labDown } from '../../src/lab/down'
import { execArgv } from '../../src/lab/exec'
import type { LabState } from '../../src/lab/state'
import { labStatus } from '../../src/lab/status'
import { labUp } from '../../src/lab/up'
import { everythingLeft, ferryFromSource, forceDown, IS_ROOT, isMeshBuilt, recordedPids, REPO, runArgv, uniqueLabName } from './helpers'

// The lab with the mesh: one agent per node, launched in its own cgroup and the node's
// namespace, and `up` returns only once it has enrolled the meshed pods. The agents run
// from source here (so this needs the native addon and eBPF objects built, not dist/).

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const opts = skip === undefined ? {} : { skip }

const lab = uniqueLabName('lmsh')
let state: LabState

t.before(async () => {
  if (skip !== undefined) return
  state = await labUp({ name: lab, files: [join(REPO, 'examples/hello/hello.yaml')], mesh: true, timeoutMs: 60_000, ferryArgv: ferryFromSource() })
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
