import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { labApplyFiles } from '../../src/lab/apply'
import { isPopulated } from '../../src/lab/cgroup'
import { labDown } from '../../src/lab/down'
import { execArgv } from '../../src/lab/exec'
import { loadLab } from '../../src/lab/labs'
import { labConfigDir } from '../../src/lab/policies'
import type { LabState } from '../../src/lab/state'
import { labUp } from '../../src/lab/up'
import { everythingLeft, FIXTURES, labFerryArgv, forceDown, labCli, manifestFile, recordedPids, REPO, ROOT_ONLY, runArgv } from './helpers'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// Pods added to and deleted from a running lab, made and removed exactly as `up` makes
// them, with the container runtime's CNI calls: a recording chained plugin
// (test/fixtures/cni-recorder.js) sees every ADD — with the pod's IPs in prevResult and
// no container process yet in the pod's cgroup — and every DEL; while it fails, a pod
// waits with no container started, and starts once it succeeds.

const lab = uniqueLabName('lapp')
const work = mkdtempSync(join(tmpdir(), 'ferry-lab-apply-'))
const records = join(work, 'records')
const failFile = join(work, 'fail')
const RECORDER = join(REPO, 'test', 'fixtures', 'cni-recorder.js')
const TARGET = join(FIXTURES, 'probe-target.js')
const cniPlugins = [{ path: RECORDER, config: { recordDir: records, failWhileExists: failFile, capabilities: { 'io.kubernetes.cri.pod-annotations': true } } }]

const LAB = [
  'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n',
  'apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n',
  'apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: app}\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 1\n  containers: [{name: main, command: [sleep, infinity]}]\n',
  `apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: app, labels: {app: a}}\nspec:\n  nodeName: n2\n  terminationGracePeriodSeconds: 1\n  containers: [{name: main, command: [node, ${TARGET}], ports: [{containerPort: 8080}]}]\n`
].join('---\n')

const podDoc = (name: string, node = 'n1', extra = ''): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: app, labels: {app: ${name}}}\nspec:\n  nodeName: ${node}\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: main\n      command: [node, ${TARGET}]\n      ports: [{containerPort: 8080}]\n${extra}`
const POLICY = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-b, namespace: app}\nspec:\n  action: ALLOW\n  rules: [{from: [{source: {namespaces: ["app"]}}]}]\n'

let state: LabState

t.before(async () => {
  if (ROOT_ONLY.skip !== undefined) return
  mkdirSync(records)
  state = await labUp({ name: lab, files: [manifestFile(LAB)], mesh: false, timeoutMs: 90_000, ferryArgv: labFerryArgv(), cniPlugins })
})
t.teardown(async () => {
  await forceDown(lab)
  rmSync(work, { recursive: true, force: true })
})

function calls (): any[] {
  return readdirSync(records).sort().map((f) => JSON.parse(readFileSync(join(records, f), 'utf8')))
}
const callsFor = (pod: string): any[] => calls().filter((c) => c.env.CNI_ARGS.includes(`;K8S_POD_NAME=${pod};`))
function item (kind: string, name: string): any {
  return JSON.parse(readFileSync(state.plan.clusterFile, 'utf8')).items.find((o: any) => o.kind === kind && o.metadata.name === name)
}
const fresh = (): LabState => loadLab(lab)
const inClient = (cmd: string[]): ReturnType<typeof runArgv> => runArgv(execArgv(fresh(), { kind: 'pod', namespace: 'app', name: 'client' }, cmd))
function file (name: string, text: string): string {
  const f = join(work, name)
  writeFileSync(f, text)
  return f
}

t.test('up: each pod\'s chained plugins get ADD, as containerd calls them, before any of its containers exists', ROOT_ONLY, async (t) => {
  for (const p of state.plan.pods) {
    const [add] = callsFor(p.name)
    t.equal(add.command, 'ADD')
    t.equal(add.env.CNI_NETNS, `/var/run/netns/${p.netns}`)
    t.equal(add.env.CNI_IFNAME, 'eth0')
    t.match(add.env.CNI_ARGS, new RegExp(`^IgnoreUnknown=1;K8S_POD_NAMESPACE=app;K8S_POD_NAME=${p.name};K8S_POD_INFRA_CONTAINER_ID=[0-9a-f]{64};K8S_POD_UID=${p.uid}$`))
    t.equal(add.env.CNI_PATH, state.plan.nodes.find((n) => n.name === p.node)?.cni.binDir)
    t.same(add.stdin.prevResult.ips.map((x: any) => x.address), [`${p.ipv4}/32`, `${p.ipv6}/128`], 'prevResult: the primary\'s result, with the pod\'s addresses')
    t.equal(add.stdin.runtimeConfig['io.kubernetes.cri.pod-annotations']['lab.ferry.dev/cgroup'], p.cgroup)
    t.same(add.podProcesses, [], 'no process in the pod\'s cgroup yet')
  }
})

t.test('apply: a Pod, a Service and a policy from one file — validated, made as up makes a pod, reachable', ROOT_ONLY, async (t) => {
  const f = file('b.yaml', [podDoc('b'), 'apiVersion: v1\nkind: Service\nmetadata: {name: bsvc, namespace: app}\nspec:\n  selector: {app: b}\n  ports: [{port: 8080}]\n', POLICY].join('---\n'))
  const r = await labApplyFiles(fresh(), [f], { timeoutMs: 60_000 })
  t.same(r.created, ['service/app/bsvc', 'pod/app/b'])
  t.same(r.written, [join(labConfigDir(state.plan), 'b.yaml')])
  const written = readFileSync(r.written[0], 'utf8')
  t.match(written, /kind: AuthorizationPolicy/)
  t.notMatch(written, /kind: Pod/, 'only the policy reaches the config directory…')
  t.equal(written.split('\n').length, readFileSync(f, 'utf8').split('\n').length, '…at the lines it has in the file')

  const b = fresh().plan.pods.find((p) => p.name === 'b')
  if (b === undefined) throw new Error('b is not in the lab\'s state')
  t.equal(b.ipv4, '10.244.1.3', 'the next free address on n1')
  t.equal(item('Pod', 'b').status.phase, 'Running', 'published Running by n1\'s kubelet before apply returned')
  t.same(item('Service', 'bsvc').spec.clusterIPs, [fresh().plan.services.find((s) => s.name === 'bsvc')?.clusterIPs[0]])
  const add = callsFor('b')[0]
  t.same(add.podProcesses, [], 'its ADD came before its container')
  t.same(add.stdin.prevResult.ips.map((x: any) => x.address), [`${b.ipv4}/32`, `${b.ipv6}/128`])
  const curl = inClient(['curl', '-sS', '--max-time', '5', 'http://bsvc:8080/ready'])
  t.equal(curl.code, 0, curl.stderr)
  t.equal(curl.stdout, 'ok\n', 'reachable by its Service name (no mesh: the hosts file has its endpoints)')
  const pid = fresh().pids['pod/app/b/main']
  t.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${b.cgroup.slice(PATHS.cgroup2.length)}`)

  const again = await labApplyFiles(fresh(), [f], { timeoutMs: 60_000 })
  t.same([again.created, again.unchanged], [[], ['service/app/bsvc', 'pod/app/b']], 'the same objects again: unchanged')
})

t.test('apply refuses what up would refuse, and what the lab cannot take, naming file, line and field; nothing changes', ROOT_ONLY, async (t) => {
  const before = fresh().plan.pods.length
  const rv = item('Pod', 'client').metadata.uid
  const bad = file('bad.yaml', podDoc('x', 'n9') + '---\n' + podDoc('y', 'n1', '      readinessProbe: {tcpSocket: {port: 8080}, bogus: 1}\n'))
  const err = await labApplyFiles(fresh(), [bad], { timeoutMs: 10_000 }).then(() => null, (e: Error) => e)
  t.match(err, { code: 'FERRY_ERR_MANIFEST', message: /^2 problems in the manifests:/ })
  t.match(err?.message, /bad\.yaml:5: Pod app\/x: spec\.nodeName: no Node "n9" in the manifests \(Nodes: n1, n2\)/)
  t.match(err?.message, /bad\.yaml:22: Pod app\/y: spec\.containers\[0\]\.readinessProbe\.bogus: unknown field "bogus"/)
  const changed = file('changed.yaml', podDoc('b', 'n2'))
  await t.rejects(labApplyFiles(fresh(), [changed], { timeoutMs: 10_000 }), { code: 'FERRY_ERR_MANIFEST', message: /the lab has Pod app\/b already, different: Pods are immutable; `ferry lab delete` it first/ })
  const node = file('node.yaml', 'apiVersion: v1\nkind: Node\nmetadata: {name: n3}\n')
  await t.rejects(labApplyFiles(fresh(), [node], { timeoutMs: 10_000 }), { code: 'FERRY_ERR_MANIFEST', message: /Node n3: nodes cannot be added to a running lab/ })
  const nons = file('nons.yaml', podDoc('z').replace('namespace: app', 'namespace: other'))
  await t.rejects(labApplyFiles(fresh(), [nons], { timeoutMs: 10_000 }), { code: 'FERRY_ERR_MANIFEST', message: /Pod other\/z: metadata\.namespace: no Namespace "other"/ })
  t.equal(fresh().plan.pods.length, before, 'no pod added')
  t.equal(item('Pod', 'client').metadata.uid, rv)
})

t.test('a failing chained plugin holds a pod back — Pending, no container — until it succeeds', ROOT_ONLY, async (t) => {
  writeFileSync(failFile, '')
  const applying = labApplyFiles(fresh(), [file('c.yaml', podDoc('c', 'n2'))], { timeoutMs: 60_000 })
  await waitFor(() => callsFor('c').filter((c) => c.failed === true).length >= 2, { timeoutMs: 30_000, what: 'two failed ADDs of c' })
  const c = fresh().plan.pods.find((p) => p.name === 'c')
  if (c === undefined) throw new Error('c is not in the lab\'s state')
  const status = item('Pod', 'c').status
  t.equal(status.phase, 'Pending')
  t.match(status.conditions[0], { type: 'PodReadyToStartContainers', status: 'False' })
  t.match(status.containerStatuses[0], { state: { waiting: { reason: 'ContainerCreating' } }, ready: false })
  t.notOk(isPopulated(c.cgroup), 'no container process')
  t.equal(fresh().pids['pod/app/c/main'], undefined)
  t.ok(existsSync(`/var/run/netns/${c.netns}`), 'its sandbox exists')
  const log = readFileSync(state.plan.nodes[1].cni.log, 'utf8').split('\n').filter((l) => l.includes('"pod":"app/c"') && l.includes('"result":"error"'))
  t.match(JSON.parse(log[0]), { command: 'ADD', plugin: 'cni-recorder', code: 11, msg: 'try again later' }, 'each failure logged with the plugin\'s message')

  rmSync(failFile)
  const r = await applying
  t.same(r.created, ['pod/app/c'])
  t.equal(item('Pod', 'c').status.phase, 'Running')
  const seq = callsFor('c').map((x) => `${x.command as string}${x.failed === true ? '!' : ''}`)
  t.same(seq.slice(0, 2), ['ADD!', 'DEL'], 'a failed ADD is undone with DEL')
  t.equal(seq[seq.length - 1], 'ADD')
  t.same(callsFor('c').pop().podProcesses, [], 'the container started after the ADD that succeeded')
})

t.test('a plugin that fails until the deadline: apply fails and the pod is removed again', ROOT_ONLY, async (t) => {
  writeFileSync(failFile, '')
  t.teardown(() => { rmSync(failFile, { force: true }) })
  const d = await labCli(['apply', '--lab', lab, '--timeout', '3s', file('d.yaml', podDoc('d'))], 60_000)
  t.equal(d.code, 1)
  t.match(d.stderr, /FERRY_ERR_LAB_CNI: pod app\/d never got its network .*try again later/)
  t.match(d.stderr, /app\/d did not start; removing it/)
  t.equal(item('Pod', 'd'), undefined)
  t.notOk(fresh().plan.pods.some((p) => p.name === 'd'))
  t.notOk(existsSync(`/var/run/netns/fl-${lab}-app-d`))
  t.equal(callsFor('d').pop().command, 'DEL')
})

t.test('delete: the pod stopped, its CNI DEL run, its netns, veth, cgroup and hosts dir gone; the Service and policy too', ROOT_ONLY, async (t) => {
  const b = fresh().plan.pods.find((p) => p.name === 'b')
  if (b === undefined) throw new Error('no b')
  const node = state.plan.nodes[0]
  const pid = fresh().pids['pod/app/b/main']
  const r = await labCli(['delete', '--lab', lab, join(work, 'b.yaml')])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /deleted .*\/config\/b\.yaml\npod\/app\/b deleted\nservice\/app\/bsvc deleted\n/)
  const del = callsFor('b').pop()
  t.equal(del.command, 'DEL')
  t.same(del.stdin.prevResult.ips.map((x: any) => x.address), [`${b.ipv4}/32`, `${b.ipv6}/128`], 'with the cached ADD result')
  t.throws(() => process.kill(pid, 0), 'its container is gone')
  t.notOk(existsSync(`/var/run/netns/${b.netns}`))
  t.notOk(existsSync(`/etc/netns/${b.netns}`))
  t.notOk(existsSync(b.cgroup))
  t.notMatch(runArgv(['ip', '-n', node.netns, '-o', 'link']).stdout, new RegExp(`\\b${b.hostVeth}@`), 'the node side of its veth')
  t.equal(item('Pod', 'b'), undefined)
  t.equal(item('Service', 'bsvc'), undefined)
  t.notOk(existsSync(join(labConfigDir(state.plan), 'b.yaml')))
  t.notMatch(readFileSync(`/etc/netns/${state.plan.pods[0].netns}/hosts`, 'utf8'), /bsvc/, 'its name left the other pods\' hosts files')
  const again = await labCli(['delete', '--lab', lab, file('gone.yaml', podDoc('b'))])
  t.equal(again.code, 1)
  t.match(again.stderr, /FERRY_ERR_POD_NOT_FOUND: lab \S+ has no Pod app\/b/)
})

t.test('Namespaces: applied with their pods; not deleted while they hold some (the lab does not cascade)', ROOT_ONLY, async (t) => {
  const ns = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: extra, labels: {team: x}}\n'
  const f = file('extra.yaml', ns + '---\n' + 'apiVersion: v1\nkind: Pod\nmetadata: {name: n, namespace: extra}\nspec:\n  nodeName: n2\n  terminationGracePeriodSeconds: 1\n  containers: [{name: main, command: [sleep, infinity]}]\n')
  const r = await labApplyFiles(fresh(), [f], { timeoutMs: 60_000 })
  t.same(r.created, ['namespace/extra', 'pod/extra/n'])
  t.match(item('Namespace', 'extra').metadata.labels, { team: 'x', 'kubernetes.io/metadata.name': 'extra' })
  const alone = await labCli(['delete', '--lab', lab, file('extra-ns.yaml', ns)])
  t.equal(alone.code, 1)
  t.match(alone.stderr, /FERRY_ERR_INVALID_ARG: Namespace extra still holds Pod n: delete them too/)
  const both = await labCli(['delete', '--lab', lab, f])
  t.equal(both.code, 0, both.stderr)
  t.equal(both.stdout, 'pod/extra/n deleted\nnamespace/extra deleted\n')
  t.equal(item('Namespace', 'extra'), undefined)
  t.notOk(fresh().spec.namespaces.some((x) => x.name === 'extra'))
})

t.test('down after apply: DEL for every pod, nothing left', ROOT_ONLY, async (t) => {
  const s = fresh()
  const pids = recordedPids(lab)
  t.ok(pids.includes(s.pids['pod/app/c/main']), 'the applied pod\'s process is among those checked')
  const before = calls().length
  await labDown(lab)
  const dels = calls().slice(before).filter((c) => c.command === 'DEL').map((c) => /K8S_POD_NAME=([^;]+)/.exec(c.env.CNI_ARGS)?.[1]).sort()
  t.same(dels, ['a', 'c', 'client'])
  t.same(everythingLeft(lab, pids), [])
})

t.test('an apply killed in the middle (its pod held back by the plugin): down removes everything', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lappk')
  t.teardown(async () => { await forceDown(name) })
  await labUp({ name, files: [manifestFile(LAB)], mesh: false, timeoutMs: 90_000, ferryArgv: labFerryArgv(), cniPlugins })
  writeFileSync(failFile, '')
  t.teardown(() => { rmSync(failFile, { force: true }) })
  const [cmd, ...args] = labFerryArgv()
  const child = spawn(cmd, [...args, 'lab', 'apply', '--lab', name, '--timeout', '60s', file('e.yaml', podDoc('e'))], { stdio: 'ignore' })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitFor(() => callsFor('e').some((c) => c.failed === true), { timeoutMs: 30_000, what: 'e held back' })
  const e = loadLab(name).plan.pods.find((p) => p.name === 'e')
  t.ok(e !== undefined && existsSync(`/var/run/netns/${e.netns}`), 'the half-made pod is there')
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  const pids = recordedPids(name)
  const r = await labCli(['down', name])
  t.equal(r.code, 0, r.stderr)
  t.same(everythingLeft(name, pids), [])
})
