import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { labDown } from '../../src/lab/down'
import { kubeletRecordsPath, readKubeletRecords } from '../../src/lab/kubelet/records'
import { loadLab } from '../../src/lab/labs'
import type { LabState } from '../../src/lab/state'
import { labUp } from '../../src/lab/up'
import { everythingLeft, FIXTURES, labFerryArgv, forceDown, labCli, manifestFile, recordedPids, REPO, ROOT_ONLY, runArgv } from './helpers'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// The lab's kubelet (`ferry lab kubelet`, one per node): real pods, real probes. It runs
// HTTP, TCP, gRPC and exec probes with the kubelet's timing and thresholds, from its own
// cgroup in the node's network namespace and from the node's address; startup probes
// gate the others; a failed liveness probe restarts the container; and it publishes each
// pod's status — phase, conditions, container statuses — into cluster.json. Without the
// kubelet (or with probes ignored) every assertion on Ready, restarts and peers fails.

const lab = uniqueLabName('lkub')
const flags = mkdtempSync(join(tmpdir(), 'ferry-kubelet-flags-'))
const TARGET = join(FIXTURES, 'probe-target.js')
const GRPC = join(REPO, 'test', 'fixtures', 'grpc-health-server.js')
const NODE_IP = '172.30.0.1'

const pod = (name: string, containers: string, extra = ''): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: probes}\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 1\n${extra}  containers:\n${containers}`
const MANIFEST = [
  'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: probes}\n',
  pod('web', `    - name: main
      command: [node, ${TARGET}]
      env: [{name: FLAGS, value: ${flags}/web}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /ready, port: http, httpHeaders: [{name: X-Probe, value: lab}]}, periodSeconds: 1, failureThreshold: 1}
      livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 2}
`),
  pod('grpc', `    - name: main
      command: [node, ${GRPC}]
      env: [{name: FLAGS, value: ${flags}/grpc}]
      ports: [{containerPort: 50051}]
      readinessProbe: {grpc: {port: 50051}, periodSeconds: 1, failureThreshold: 1}
`),
  pod('tcp', `    - name: main
      command: [node, ${TARGET}]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`),
  pod('closed', `    - name: main
      command: [sleep, infinity]
      readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1, failureThreshold: 1}
`),
  pod('exec', `    - name: main
      command: [sleep, infinity]
      readinessProbe: {exec: {command: [test, -f, "${flags}/exec-ready"]}, periodSeconds: 1, failureThreshold: 1}
`),
  pod('plain', `    - name: main
      command: [sleep, infinity]
`),
  pod('slow', `    - name: main
      command: [node, ${TARGET}]
      startupProbe: {exec: {command: [test, -f, "${flags}/slow-started"]}, periodSeconds: 1, failureThreshold: 60}
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`)
].join('---\n')

let state: LabState

t.before(async () => {
  if (ROOT_ONLY.skip !== undefined) return
  for (const d of ['web', 'grpc']) mkdirSync(join(flags, d))
  state = await labUp({ name: lab, files: [manifestFile(MANIFEST)], mesh: false, timeoutMs: 90_000, ferryArgv: labFerryArgv() })
})
t.teardown(async () => {
  await forceDown(lab)
  rmSync(flags, { recursive: true, force: true })
})

function published (name: string): any {
  const list = JSON.parse(readFileSync(state.plan.clusterFile, 'utf8'))
  return list.items.find((o: any) => o.kind === 'Pod' && o.metadata.name === name)
}
const ready = (name: string): boolean => published(name)?.status?.conditions?.find((c: any) => c.type === 'Ready')?.status === 'True'
const notReady = (name: string): boolean => published(name)?.status?.conditions?.find((c: any) => c.type === 'Ready')?.status === 'False'
const containerStatus = (name: string): any => published(name)?.status?.containerStatuses?.[0]

function jsonLines (file: string): any[] {
  let text = ''
  try { text = readFileSync(file, 'utf8') } catch { return [] }
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) } catch { return null } }).filter((x) => x !== null)
}
const kubeletLog = (): any[] => jsonLines(state.plan.nodes[0].kubeletLog)
const containerLog = (name: string): any[] => jsonLines(state.plan.pods.find((p) => p.name === name)?.containers[0].log as string)
/** The last line of a log matching `match` (logs are written in batches: wait for it). */
async function logLine (lines: () => any[], match: (l: any) => boolean): Promise<any> {
  return await waitFor(() => lines().filter(match).pop(), { timeoutMs: 15_000, what: 'a log line' })
}

t.test('the kubelet runs in its own cgroup below the node\'s, in the node\'s network namespace', ROOT_ONLY, async (t) => {
  const node = state.plan.nodes[0]
  t.equal(node.kubeletCgroup, `${node.cgroup}/kubelet`)
  const pid = state.pids['kubelet/n1']
  t.ok(pid > 0, 'its pid is recorded')
  const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))
  t.equal(cgroup, `0::${node.kubeletCgroup.slice(PATHS.cgroup2.length)}`)
  t.equal(runArgv(['readlink', `/proc/${pid}/ns/net`]).stdout, runArgv(['nsenter', `--net=/var/run/netns/${node.netns}`, 'readlink', '/proc/self/ns/net']).stdout)
  t.match(await logLine(kubeletLog, (l) => l.msg === 'kubelet started'), { node: 'n1', cgroup: node.kubeletCgroup.slice(PATHS.cgroup2.length) })
})

t.test('status as the kubelet publishes it: phase, conditions, container statuses; no probe: Ready once running', ROOT_ONLY, async (t) => {
  await waitFor(() => ready('plain'), { timeoutMs: 15_000, what: 'plain Ready' })
  const s = published('plain').status
  t.equal(s.phase, 'Running')
  t.same(s.conditions.map((c: any) => [c.type, c.status]), [['PodReadyToStartContainers', 'True'], ['Initialized', 'True'], ['Ready', 'True'], ['ContainersReady', 'True'], ['PodScheduled', 'True']])
  t.ok(s.conditions.every((c: any) => !Number.isNaN(Date.parse(c.lastTransitionTime))))
  t.match(s.containerStatuses[0], { name: 'main', ready: true, started: true, restartCount: 0, state: { running: { startedAt: String } }, containerID: /^containerd:\/\/[0-9a-f]{64}$/ })
  const p = state.plan.pods.find((x) => x.name === 'plain')
  t.same([s.podIP, s.hostIP], [p?.ipv4, NODE_IP])

  t.match(await logLine(kubeletLog, (l) => l.msg === 'probe' && l.pod === 'probes/closed'), { container: 'main', probe: 'readiness', result: 'failure', detail: /dial tcp 10\.244\.1\.\d+:9999: .*ECONNREFUSED/ })
  t.ok(notReady('closed'), 'a TCP probe to a port nobody listens on: not Ready')
  t.match(published('closed').status.conditions.find((c: any) => c.type === 'Ready'), { reason: 'ContainersNotReady', message: 'containers with unready status: [main]' })
})

t.test('an HTTP readiness probe: Ready follows /ready; the requests come from the node\'s address, as kube-probe', ROOT_ONLY, async (t) => {
  await waitFor(() => ready('web'), { timeoutMs: 15_000, what: 'web Ready' })
  const rv = Number(JSON.parse(readFileSync(state.plan.clusterFile, 'utf8')).metadata.resourceVersion)
  writeFileSync(join(flags, 'web', 'not-ready'), '')
  await waitFor(() => notReady('web'), { timeoutMs: 15_000, what: 'web not Ready' })
  t.ok(Number(JSON.parse(readFileSync(state.plan.clusterFile, 'utf8')).metadata.resourceVersion) > rv, 'each status write bumps the List\'s resourceVersion')
  // The failure that says 503 (probes may also have failed before the server listened).
  t.ok(await logLine(kubeletLog, (l) => l.pod === 'probes/web' && l.probe === 'readiness' && l.result === 'failure' && /GET http:\/\/10\.244\.1\.\d+:8080\/ready: HTTP 503/.test(l.detail)), 'the readiness probe saw the 503')
  t.match(containerStatus('web'), { ready: false, started: true })
  rmSync(join(flags, 'web', 'not-ready'))
  await waitFor(() => ready('web'), { timeoutMs: 15_000, what: 'web Ready again' })

  const probes = containerLog('web').filter((l) => l.event === 'request')
  t.ok(probes.length >= 3)
  t.same([...new Set(probes.map((l) => l.peer))], [NODE_IP], 'every probe request came from the node\'s address')
  t.same([...new Set(probes.map((l) => l.userAgent))], ['kube-probe/1.31'])
  t.ok(probes.filter((l) => l.path === '/ready').every((l) => l.probeHeader === 'lab'), 'with the probe\'s headers')
})

t.test('TCP and gRPC probes; the gRPC health check comes from the node too', ROOT_ONLY, async (t) => {
  await waitFor(() => ready('tcp') && ready('grpc'), { timeoutMs: 15_000, what: 'tcp and grpc Ready' })
  writeFileSync(join(flags, 'grpc', 'not-serving'), '')
  await waitFor(() => notReady('grpc'), { timeoutMs: 15_000, what: 'grpc not Ready' })
  t.ok(await logLine(kubeletLog, (l) => l.pod === 'probes/grpc' && l.result === 'failure' && /gRPC health 10\.244\.1\.\d+:50051 "": NOT_SERVING/.test(l.detail)), 'the gRPC health probe saw NOT_SERVING')
  rmSync(join(flags, 'grpc', 'not-serving'))
  await waitFor(() => ready('grpc'), { timeoutMs: 15_000, what: 'grpc Ready again' })
  const checks = containerLog('grpc').filter((l) => l.event === 'check')
  t.ok(checks.length >= 2)
  // grpc-js names the peer host:port; a dual-stack listener sees an IPv4 peer as ::ffff:a.b.c.d.
  t.same([...new Set(checks.map((l) => l.peer.replace(/:\d+$/, '').replace(/^\[?::ffff:/, '').replace(/\]$/, '')))], [NODE_IP], 'every health check came from the node\'s address')
  const conns = containerLog('tcp').filter((l) => l.event === 'connection' && l.peer === NODE_IP)
  t.ok(conns.length >= 1, 'the TCP probe\'s connections come from the node\'s address')
})

t.test('an exec probe runs in the container: Ready follows the command\'s exit', ROOT_ONLY, async (t) => {
  t.ok(notReady('exec'))
  writeFileSync(join(flags, 'exec-ready'), '')
  await waitFor(() => ready('exec'), { timeoutMs: 15_000, what: 'exec Ready' })
  rmSync(join(flags, 'exec-ready'))
  await waitFor(() => notReady('exec'), { timeoutMs: 15_000, what: 'exec not Ready' })
  t.match(await logLine(kubeletLog, (l) => l.pod === 'probes/exec' && l.result === 'failure'), { detail: /exec test -f .*exec-ready: exit 1/ })
})

t.test('a startup probe holds liveness and readiness back until it succeeds', ROOT_ONLY, async (t) => {
  t.match(containerStatus('slow'), { started: false, ready: false, state: { running: {} } })
  t.notOk(kubeletLog().some((l) => l.pod === 'probes/slow' && l.probe === 'readiness'), 'no readiness probe yet')
  writeFileSync(join(flags, 'slow-started'), '')
  await waitFor(() => ready('slow'), { timeoutMs: 15_000, what: 'slow Ready' })
  t.match(containerStatus('slow'), { started: true, ready: true })
  t.ok(await logLine(kubeletLog, (l) => l.pod === 'probes/slow' && l.probe === 'startup' && l.result === 'success'))
})

t.test('a failed liveness probe restarts the container: a new process, restartCount + 1, then Ready again', ROOT_ONLY, async (t) => {
  const p = state.plan.pods.find((x) => x.name === 'web')
  if (p === undefined) throw new Error('no web pod')
  const firstPid = state.pids['pod/probes/web/main']
  writeFileSync(join(flags, 'web', 'unhealthy'), '')
  await waitFor(() => (containerStatus('web')?.restartCount ?? 0) >= 1, { timeoutMs: 20_000, what: 'a restart' })
  rmSync(join(flags, 'web', 'unhealthy'))
  await waitFor(() => ready('web'), { timeoutMs: 20_000, what: 'web Ready after its restart' })
  const cs = containerStatus('web')
  t.match(cs.lastState, { terminated: { exitCode: 143, reason: 'Error', startedAt: String, finishedAt: String } }, 'the old run ended by SIGTERM')
  const record = readKubeletRecords(kubeletRecordsPath(state.plan, 'n1')).pods[p.uid].main
  t.equal(record.restartCount, cs.restartCount)
  t.not(record.pid, firstPid, 'a new process')
  t.throws(() => process.kill(firstPid, 0), 'the old one is gone')
  t.equal(readFileSync(`/proc/${record.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${p.cgroup.slice(PATHS.cgroup2.length)}`, 'in the pod\'s cgroup')
  t.ok(containerLog('web').filter((l) => l.event === 'listening').length >= 2, 'the same command started again, logging to the same file')
  t.match(await logLine(kubeletLog, (l) => l.event === 'killing' && l.pod === 'probes/web'), { probe: 'liveness', detail: /liveness probe failed 2 time\(s\): GET .*\/healthz: HTTP 500/ })

  const s = await labCli(['status', '--json', lab])
  t.equal(s.code, 0, s.stderr)
  const web = JSON.parse(s.stdout).pods.find((x: any) => x.name === 'web')
  t.match(web, { phase: 'Running', ready: true, readyContainers: '1/1', restarts: cs.restartCount, status: 'Running', containers: [{ name: 'main', pid: record.pid, alive: true }] })
  const text = await labCli(['status', lab])
  t.match(text.stdout, /probes\/web\s+n1\s+\S+\s+\S+\s+Running\s+Running\s+1\/1\s+[1-9]/, 'the table shows readiness and restarts')
})

t.test('restart --kubelet: a new kubelet picks up its records (restart counts) and probes on', ROOT_ONLY, async (t) => {
  const restarts = containerStatus('web').restartCount
  const old = state.pids['kubelet/n1']
  const r = await labCli(['restart', '--lab', lab, '--kubelet', 'n1', '--signal', 'TERM'])
  t.equal(r.code, 0, r.stderr)
  const pid = loadLab(lab).pids['kubelet/n1']
  t.not(pid, old)
  t.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${state.plan.nodes[0].kubeletCgroup.slice(PATHS.cgroup2.length)}`)
  writeFileSync(join(flags, 'web', 'not-ready'), '')
  await waitFor(() => notReady('web'), { timeoutMs: 15_000, what: 'web not Ready, seen by the new kubelet' })
  rmSync(join(flags, 'web', 'not-ready'))
  await waitFor(() => ready('web'), { timeoutMs: 15_000, what: 'web Ready again' })
  t.equal(containerStatus('web').restartCount, restarts, 'the restart count survived the kubelet\'s restart')
  state.pids['kubelet/n1'] = pid
})

t.test('down stops the kubelets too and leaves nothing', ROOT_ONLY, async (t) => {
  const record = readKubeletRecords(kubeletRecordsPath(state.plan, 'n1'))
  const pids = [...recordedPids(lab), ...Object.values(record.pods).flatMap((cs) => Object.values(cs).map((c) => c.pid))]
  t.ok(pids.includes(state.pids['kubelet/n1']))
  await labDown(lab)
  t.same(everythingLeft(lab, pids), [])
})
