import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { labDown } from '../../src/lab/down'
import { execArgv } from '../../src/lab/exec'
import { labUp } from '../../src/lab/up'
import type { LabState } from '../../src/lab/state'
import { everythingLeft, FIXTURES, forceDown, labCli, recordedPids, ROOT_ONLY, runArgv } from './helpers'
import { uniqueLabName } from '../helpers/names'

// A two-node lab without the mesh (the "direct" path): real namespaces, veths, routes,
// cgroups and processes. Pods reach each other across nodes over IPv4 and IPv6, names
// come from the hosts file, exec lands in the pod, and `down` leaves nothing.

const lab = uniqueLabName('ldir')
const manifest = join(FIXTURES, 'two-nodes.yaml')
let state: LabState

t.before(async () => {
  if (ROOT_ONLY.skip !== undefined) return
  state = await labUp({ name: lab, files: [manifest], mesh: false, timeoutMs: 30_000 })
})
t.teardown(async () => { await forceDown(lab) })

function inPod (name: string, cmd: string[]): ReturnType<typeof runArgv> {
  return runArgv(execArgv(state, { kind: 'pod', namespace: 'app', name }, cmd))
}

t.test('a pod on node1 reaches a pod on node2 by pod IP, IPv4 and IPv6', ROOT_ONLY, async (t) => {
  const server2 = state.plan.pods.find((p) => p.name === 'server2')
  const client = state.plan.pods.find((p) => p.name === 'client')
  t.equal(server2?.node, 'node2')
  t.equal(client?.node, 'node1')
  const v4 = inPod('client', ['curl', '-sS', '--max-time', '5', `http://${server2?.ipv4 as string}:8080/`])
  t.equal(v4.code, 0, v4.stderr)
  t.equal(v4.stdout, `server2 at ${server2?.ipv4 as string} from ::ffff:${client?.ipv4 as string}\n`, 'the source address is the client pod\'s own')
  const v6 = inPod('client', ['curl', '-sS', '-g', '--max-time', '5', `http://[${server2?.ipv6 as string}]:8080/`])
  t.equal(v6.code, 0, v6.stderr)
  t.equal(v6.stdout, `server2 at ${server2?.ipv4 as string} from ${client?.ipv6 as string}\n`)
})

t.test('Service names resolve from the pod\'s hosts file; nothing leaks to real DNS', ROOT_ONLY, async (t) => {
  const hosts = readFileSync(`/etc/netns/${state.plan.pods[0].netns}/hosts`, 'utf8')
  t.match(hosts, /\techo echo\.app echo\.app\.svc echo\.app\.svc\.cluster\.local$/m)
  for (const name of ['echo', 'echo.app', 'echo.app.svc.cluster.local']) {
    const r = inPod('client', ['getent', 'ahosts', name])
    t.equal(r.code, 0, `${name} resolves`)
    t.match(r.stdout, /^10\.244\.[12]\.\d+ /m, `${name}: without the mesh, to endpoint pod IPs`)
  }
  const r = inPod('client', ['curl', '-sS', '--max-time', '5', 'http://echo.app.svc.cluster.local:8080/'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^server[12] at /)
  t.not(inPod('client', ['getent', 'hosts', 'example.com']).code, 0, 'an outside name does not resolve')
})

t.test('pod processes run in their pod cgroup; exec joins it too', ROOT_ONLY, async (t) => {
  const server1 = state.plan.pods.find((p) => p.name === 'server1')
  const pid = state.pids['pod/app/server1/main']
  const rel = (dir: string): string => dir.slice(PATHS.cgroup2.length)
  t.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${rel(server1?.cgroup as string)}`)
  t.match(server1?.cgroup, /\/ferry-lab-[a-z0-9-]+\/node1\/kubepods\.slice\/kubepods-besteffort\.slice\/kubepods-besteffort-pod[0-9a-f_]{36}\.slice$/)
  const r = inPod('server1', ['sh', '-c', 'cat /proc/self/cgroup; echo "$HOSTNAME $POD_IP"'])
  t.match(r.stdout, `0::${rel(server1?.cgroup as string)}\n`)
  t.match(r.stdout, `server1 ${server1?.ipv4 as string}`)
})

t.test('ferry lab exec: exit codes, pods, nodes, underlay', ROOT_ONLY, async (t) => {
  const fail = await labCli(['exec', '--lab', lab, 'client', '-n', 'app', '--', 'sh', '-c', 'echo out; exit 3'])
  t.equal(fail.code, 3, 'the command\'s exit code')
  t.equal(fail.stdout, 'out\n', 'stdout passed through')
  const node = await labCli(['exec', '--lab', lab, '--node', 'node2', '--', 'ip', '-br', 'addr', 'show', 'eth0'])
  t.equal(node.code, 0, node.stderr)
  t.match(node.stdout, /172\.30\.0\.2\/24 fd30::2\/64/)
  const underlay = await labCli(['exec', '--lab', lab, '--underlay', '--', 'ip', '-br', 'link', 'show', 'master', 'br0'])
  t.match(underlay.stdout, /vn1@/)
  t.match(underlay.stdout, /vn2@/)
  const missing = await labCli(['exec', '--lab', lab, 'nope', '-n', 'app', '--', 'true'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /FERRY_ERR_POD_NOT_FOUND: lab \S+ has no pod app\/nope/)
})

t.test('status and logs', ROOT_ONLY, async (t) => {
  const s = await labCli(['status', '--json', lab])
  t.equal(s.code, 0, s.stderr)
  const status = JSON.parse(s.stdout)
  t.equal(status.phase, 'up')
  t.same(status.pods.map((p: any) => [p.name, p.status]), [['client', 'Running'], ['server1', 'Running'], ['server2', 'Running']])
  t.same(status.services[0].endpoints, ['app/server1', 'app/server2'])
  const logs = await labCli(['logs', '--lab', lab, '-n', 'app', 'server2'])
  t.equal(logs.stdout, `server2 at ${state.plan.pods[2].ipv4}: listening on [::]:8080\n`)
})

t.test('two labs at once; a name that would overlap is refused', ROOT_ONLY, async (t) => {
  await t.rejects(labUp({ name: `${lab}-x`, files: [manifest], mesh: false, timeoutMs: 30_000 }), { code: 'FERRY_ERR_LAB_EXISTS' })
  const other = uniqueLabName('ldirb')
  t.teardown(async () => { await forceDown(other) })
  const second = await labUp({ name: other, files: [manifest], mesh: false, timeoutMs: 30_000 })
  t.same(second.plan.pods.map((p) => p.ipv4), state.plan.pods.map((p) => p.ipv4), 'the same addresses, in separate namespaces')
  const r = runArgv(execArgv(second, { kind: 'pod', namespace: 'app', name: 'client' }, ['curl', '-sS', '--max-time', '5', `http://${second.plan.pods[2].ipv4}:8080/`]))
  t.equal(r.code, 0, r.stderr)
  await labDown(other)
  t.same(everythingLeft(other), [])
  t.equal(inPod('client', ['curl', '-sS', '--max-time', '5', `http://${state.plan.pods[2].ipv4}:8080/`]).code, 0, 'the first lab is untouched')
})

t.test('down leaves no netns, cgroup, veth, /etc/netns dir, pin dir, state or process', ROOT_ONLY, async (t) => {
  const pids = recordedPids(lab)
  t.equal(pids.length, 3 + 2, 'three containers, two kubelets')
  const report = await labDown(lab)
  t.ok(report.found)
  t.equal(report.netns.length, 1 + 2 + 3, 'underlay, two nodes, three pods')
  t.same(everythingLeft(lab, pids), [])
  for (const n of [...state.plan.pods.map((p) => p.netns), ...state.plan.nodes.map((x) => x.netns), state.plan.underlay.netns]) {
    t.notOk(existsSync(`/var/run/netns/${n}`), `netns ${n} gone`)
    t.notOk(existsSync(`/etc/netns/${n}`), `/etc/netns/${n} gone`)
  }
  t.notOk(existsSync(state.plan.cgroupRoot), 'cgroup tree gone')
  t.notOk(existsSync(state.plan.stateDir), 'state dir gone')
  const again = await labCli(['down', lab])
  t.equal(again.code, 1)
  t.match(again.stderr, 'FERRY_ERR_LAB_NOT_FOUND')
})
