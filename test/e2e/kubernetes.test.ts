import t from 'tap'
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { updateClusterFile } from '../../src/lab/cluster-file'
import { procCgroup } from '../../src/lab/proc'
import { readState } from '../../src/lab/state'
import { containerScope } from '../../src/lab/topology'
import { FERRY, REPO, ferry, ferryOk } from '../helpers/cli'
import { accessLines, agentPids, capturedRequest, counter, execInNode, execInPod, labDir, labNetns, metrics, nodeLog, pod, serviceIPs } from '../helpers/lab'
import { agentGet } from '../helpers/agent-admin'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// The agent in cluster mode, end to end, on this machine's kernel: a lab made with
// --kubernetes-api serves its objects over the Kubernetes list + watch protocol (the
// lab's own server, src/lab/api-server.ts — not kube-apiserver; plain HTTP inside the
// underlay namespace), gives its pods kubelet-style cgroups (the systemd driver's
// kubepods-besteffort-pod<uid>.slice with cri-containerd-<id>.scope containers, and a
// sandbox process holding each pod's netns), and runs the agent as the DaemonSet does:
// `ferry agent --kubernetes --kubeconfig …`, the `kubernetes` discovery source and the
// `kubelet` locator finding every pod from /proc. Nothing of the lab's annotations
// reaches the agent. Covered: pods that ran before the agent, a pod added afterwards
// (its object before its sandbox, as the kubelet races the API), a delete, an API
// server restart (every watch resumes into 410 Gone and re-lists), and the SIGTERM
// drain of a real agent process.

const lab = uniqueLabName('e2ek8s')
const fixture = join(REPO, 'test/fixtures/one-node.yaml')
const pinRoot = `/sys/fs/bpf/ferry-lab-${lab}-n1`
const clusterFile = join(labDir(lab), 'cluster.json')
let downDone = false

t.before(async () => { await ferryOk(['lab', 'up', '--name', lab, '--kubernetes-api', fixture], { timeoutMs: 120_000 }) })
t.teardown(async () => { if (!downDone) await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

function state (): NonNullable<ReturnType<typeof readState>> {
  const s = readState(join(labDir(lab), 'state.json'))
  if (s === null) throw new Error(`no state for lab ${lab}`)
  return s
}

async function debugPods (): Promise<Array<{ uid: string, name: string, netns: string, cgroup: string }>> {
  const r = await agentGet(lab, 'n1', '/debug/pods')
  if (r.status !== 200) throw new Error(`/debug/pods answered ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body.pods
}

async function readyStatus (): Promise<string> {
  const r = await execInNode(lab, 'n1', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', 'http://127.0.0.1:15021/healthz/ready'])
  return r.stdout.trim()
}

function apiLog (): any[] {
  const file = join(labDir(lab), 'logs', 'api-server.log')
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
}

/** Changes cluster.json as another writer beside the lab's kubelets: under its lock, with the next resourceVersion. */
async function editCluster (edit: (items: any[]) => any[]): Promise<void> {
  await updateClusterFile(clusterFile, (list) => { list.items = edit(list.items); return true })
}

t.test('pods that ran before the agent: found through the API and the kubelet locator, captured', async (t) => {
  const s = state()
  t.ok(s.plan.kubernetesApi, 'the lab has an API server')
  const agent = nodeLog(lab, 'n1').find((l) => l.msg === 'agent started')
  t.match(agent, { clusterFile: null, kubernetes: { kubeconfig: s.plan.kubernetesApi?.kubeconfig, hostProc: '/proc', cgroupRoot: PATHS.cgroup2 } }, 'the agent runs with --kubernetes, no cluster file')

  const pods = await debugPods()
  t.same(pods.map((p) => p.name).sort(), ['client', 'server-a', 'server-b'])
  for (const p of s.plan.pods) {
    const e = pods.find((x) => x.uid === p.uid)
    t.equal(e?.cgroup, p.cgroup, `${p.name}: the kubelet-style pod cgroup, found by the locator`)
    t.match(e?.cgroup, /\/kubepods\.slice\/kubepods-besteffort\.slice\/kubepods-besteffort-pod[0-9a-f_]{36}\.slice$/)
    const pid = Number(/^\/proc\/(\d+)\/ns\/net$/.exec(e?.netns ?? '')?.[1])
    t.ok(pid > 0, `${p.name}: netns from a pod process (${e?.netns})`)
    t.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')), `0::${(p.sandboxCgroup as string).slice(PATHS.cgroup2.length)}`, `${p.name}: that process is the sandbox, in its cri-containerd scope`)
  }

  const lists = apiLog().filter((l) => l.msg === 'request' && l.verb === 'list')
  t.ok(lists.some((l) => l.path === '/api/v1/pods' && l.fieldSelector === 'spec.nodeName=n1'), 'this node\'s pods listed by field selector')
  t.ok(lists.every((l) => l.authorized === true), 'with the kubeconfig\'s token')
  const api = s.plan.kubernetesApi as { address: string, port: number, tokenFile: string }
  const token = readFileSync(api.tokenFile, 'utf8').trim()
  const r = await ferryOk(['lab', 'exec', '--lab', lab, '--underlay', '--', 'curl', '-sS', '--max-time', '3', '-H', `Authorization: Bearer ${token}`, `http://${api.address}:${api.port}/api/v1/pods`])
  const served = JSON.parse(r).items as any[]
  t.equal(served.length, 3)
  t.notOk(served.some((o) => Object.keys(o.metadata.annotations ?? {}).some((k) => k.startsWith('lab.ferry.dev/'))), 'the API serves no lab annotations: the agent had to locate pods itself')

  await capturedRequest(lab, pod(lab, 'app', 'server-a').ips[0])
})

t.test('a pod added after the agent (object first, sandbox later) is enrolled and captured; deleting it unenrolls and unpins it', async (t) => {
  const s = state()
  const uid = randomUUID()
  const netns = `fl-${lab}-late`
  const podCgroup = join(s.plan.nodes[0].podsCgroup, `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`)
  const scope = join(podCgroup, containerScope(uid, ''))
  await editCluster((items) => [...items, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'late', namespace: 'app', uid, labels: { app: 'late' } },
    spec: { nodeName: 'n1', serviceAccountName: 'late', containers: [{ name: 'main', image: 'busybox' }] },
    status: { phase: 'Running', podIP: '10.244.1.200', podIPs: [{ ip: '10.244.1.200' }], hostIP: s.plan.nodes[0].ipv4 }
  }])
  // The object is there, its sandbox is not: the pod is pending; the node stays ready.
  await waitFor(() => nodeLog(lab, 'n1').some((l) => l.msg === 'pod cannot be enrolled' && l.uid === uid && /no pod cgroup|no process of the pod/.test(l.err)), { what: 'the late pod pending without a process', timeoutMs: 20_000 })
  t.equal(await readyStatus(), '200', 'a pod not located yet does not make the node unready')

  // Its sandbox: a netns (the lab's prefix, so `down` sweeps it), the pod cgroup and a process in both.
  t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0)
  t.equal(spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']).status, 0)
  mkdirSync(scope, { recursive: true })
  const sandbox = spawn('sh', ['-c', 'echo $$ > "$0" && exec nsenter --net="$1" -- sleep infinity', join(scope, 'cgroup.procs'), `/var/run/netns/${netns}`], { detached: true, stdio: 'ignore' })
  sandbox.unref()
  t.teardown(() => { try { sandbox.kill('SIGKILL') } catch {} })

  const enrolled = await waitFor(async () => (await debugPods()).find((p) => p.uid === uid), { what: 'the late pod enrolled', timeoutMs: 30_000 })
  t.equal(enrolled.cgroup, podCgroup, 'its kubelet-style cgroup')
  t.equal(enrolled.netns, `/proc/${sandbox.pid as number}/ns/net`, 'its sandbox\'s netns')
  await waitFor(async () => await readyStatus() === '200', { what: 'ready again', timeoutMs: 20_000 })
  t.ok(existsSync(join(pinRoot, 'pods', uid)), 'its links are pinned')

  // Captured: a process of the pod connecting to the Service is steered into the proxy
  // (the pod has no route out, so the proxy's upstream connect fails — after capture).
  const vip = serviceIPs(lab, 'app', 'server')[0]
  const before = accessLines(lab, 'n1').length
  spawnSync('sh', ['-c', 'echo $$ > "$0" && exec nsenter --net="$1" -- curl -sS --max-time 3 "http://$2/"', join(scope, 'cgroup.procs'), `/var/run/netns/${netns}`, vip], { timeout: 10_000 })
  const line = await waitFor(() => accessLines(lab, 'n1').slice(before).find((l) => l.direction === 'outbound' && l.source?.pod === 'late'), { what: 'an access line of the late pod' })
  t.equal(line.original_destination, `${vip}:80`, 'the late pod\'s connection went through the proxy')

  await editCluster((items) => items.filter((o) => o.metadata?.uid !== uid))
  await waitFor(async () => !(await debugPods()).some((p) => p.uid === uid), { what: 'the late pod unenrolled', timeoutMs: 20_000 })
  // The agent's log is written in batches: the line follows the unenrolment shortly.
  await waitFor(() => nodeLog(lab, 'n1').some((l) => l.msg === 'pod unenrolled' && l.uid === uid && l.reason === 'gone'), { what: 'unenrolled because it is gone' })
  await waitFor(() => !existsSync(join(pinRoot, 'pods', uid)), { what: 'its pins removed' })
  t.equal(await readyStatus(), '200')
})

t.test('a pod already listening on Ferry\'s port fails its own enrollment, with an Event on it; the node stays ready and its other pods are served', async (t) => {
  const s = state()
  const uid = randomUUID()
  const netns = `fl-${lab}-squat`
  const podCgroup = join(s.plan.nodes[0].podsCgroup, `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`)
  const sandboxScope = join(podCgroup, containerScope(uid, ''))
  const mainScope = join(podCgroup, containerScope(uid, 'main'))
  t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0)
  t.equal(spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']).status, 0)
  t.teardown(() => { spawnSync('ip', ['netns', 'del', netns]) })
  for (const scope of [sandboxScope, mainScope]) mkdirSync(scope, { recursive: true })
  const inScope = (scope: string, argv: string[]): ReturnType<typeof spawn> => {
    const child = spawn('sh', ['-c', 'echo $$ > "$0" && ns="$1" && shift && exec nsenter --net="$ns" -- "$@"', join(scope, 'cgroup.procs'), `/var/run/netns/${netns}`, ...argv], { detached: true, stdio: 'ignore' })
    child.unref()
    t.teardown(() => { try { child.kill('SIGKILL') } catch {} })
    return child
  }
  inScope(sandboxScope, ['sleep', 'infinity'])
  // A container of the pod holds 127.0.0.1:15006 before the agent gets to the pod.
  const squatter = inScope(mainScope, [process.execPath, '-e', "require('net').createServer().listen(15006, '127.0.0.1')"])
  t.teardown(async () => { await editCluster((items) => items.filter((o) => o.metadata?.uid !== uid)) })
  await waitFor(() => spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hltn', 'sport = :15006'], { encoding: 'utf8' }).stdout.includes('127.0.0.1:15006'), { what: 'the squatter listening' })
  await editCluster((items) => [...items, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'squat', namespace: 'app', uid, labels: { app: 'squat' } },
    spec: { nodeName: 'n1', serviceAccountName: 'squat', containers: [{ name: 'main', image: 'node' }] },
    status: { phase: 'Running', podIP: '10.244.1.201', podIPs: [{ ip: '10.244.1.201' }], hostIP: s.plan.nodes[0].ipv4 }
  }])
  const failed = await waitFor(() => nodeLog(lab, 'n1').find((l) => l.msg === 'pod enrollment failed' && l.uid === uid), { what: 'the squatting pod\'s enrollment failure', timeoutMs: 20_000 })
  t.match(failed, { code: 'FERRY_ERR_ENROLL', errno: 'EADDRINUSE', err: /pod app\/squat: listen inbound 127\.0\.0\.1:15006 failed: the address is already in use inside the pod/ })
  t.equal(await readyStatus(), '200', 'the node stays ready')
  await capturedRequest(lab, pod(lab, 'app', 'server-a').ips[0]) // the other pods are served as before
  t.equal(counter(await metrics(lab, 'n1'), 'ferry_pods_not_enrolled', { reason: 'port_in_use' }), 1)
  const api = s.plan.kubernetesApi as NonNullable<typeof s.plan.kubernetesApi>
  const token = readFileSync(api.tokenFile, 'utf8').trim()
  const events = await waitFor(async () => {
    const r = await execInNode(lab, 'n1', ['curl', '-sS', '--max-time', '3', '-H', `authorization: Bearer ${token}`, `http://${api.address}:${api.port}/api/v1/namespaces/app/events`])
    const found = JSON.parse(r.stdout).items.filter((e: any) => e.involvedObject?.uid === uid)
    return found.length > 0 ? found : null
  }, { what: 'an Event on the pod in the API server' })
  t.match(events[0], { type: 'Warning', reason: 'FerryEnrollmentFailed', message: /already in use inside the pod/, source: { component: 'ferry-agent', host: 'n1' } })

  // The pod frees the port: the retry enrolls it.
  squatter.kill('SIGKILL')
  await waitFor(async () => (await debugPods()).some((p) => p.uid === uid), { what: 'the pod enrolled once the port is free', timeoutMs: 45_000 })
  await editCluster((items) => items.filter((o) => o.metadata?.uid !== uid))
  await waitFor(async () => !(await debugPods()).some((p) => p.uid === uid), { what: 'the pod unenrolled', timeoutMs: 20_000 })
})

t.test('policies reach the agent through the controller\'s configuration stream, ACKed, and are enforced', async (t) => {
  const started = nodeLog(lab, 'n1').find((l) => l.msg === 'agent started')
  t.match(started?.config, /^controller /, 'the agent takes its policies from the controller, not a directory')
  const controllerLog = (): any[] => readFileSync(join(labDir(lab), 'logs', 'controller.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  const server = pod(lab, 'app', 'server-a').ips[0]
  const curl = async (): Promise<number> => (await execInPod(lab, 'app', 'client', ['curl', '-sS', '-o', '/dev/null', '--max-time', '3', `http://${server}:8080/`])).code
  t.equal(await curl(), 0, 'allowed before the policy')

  const acked = controllerLog().filter((l) => l.msg === 'configuration acknowledged').length
  await ferryOk(['lab', 'apply', '--lab', lab, join(REPO, 'test/fixtures/policies/deny-app-to-server.yaml')])
  await waitFor(async () => await curl() !== 0, { what: 'the DENY enforced through the stream', timeoutMs: 20_000, intervalMs: 50 })
  // Access lines are batched (up to 100 ms): poll for it.
  await waitFor(() => accessLines(lab, 'n1').some((l) => l.direction === 'inbound' && l.authz?.policy === 'app/deny-app-to-server'), { what: 'an access line naming the policy the stream delivered' })
  t.pass('the access log names the policy the stream delivered')
  await waitFor(() => controllerLog().filter((l) => l.msg === 'configuration acknowledged').length > acked, { what: 'the agent\'s ACK in the controller\'s log' })

  await ferryOk(['lab', 'delete', '--lab', lab, join(REPO, 'test/fixtures/policies/deny-app-to-server.yaml')])
  await waitFor(async () => await curl() === 0, { what: 'allowed again after the delete', timeoutMs: 20_000, intervalMs: 50 })
})

t.test('an API server restart: watches resume into 410 Gone, re-list, and no enrolled pod is lost', async (t) => {
  const enrolledBefore = (await debugPods()).map((p) => p.uid).sort()
  const agentLines = nodeLog(lab, 'n1').length
  const apiLines = apiLog().length
  const out = await ferryOk(['lab', 'restart', '--lab', lab, '--api-server', '--signal', 'KILL', '--down-for', '2s'], { timeoutMs: 60_000 })
  t.match(out, /API server restarted/)
  const fresh = (): any[] => apiLog().slice(apiLines)
  const started = await waitFor(() => fresh().find((l) => l.msg === 'lab api-server listening'), { what: 'the new server' })
  const relisted = (): Set<string> => new Set(fresh().filter((l) => l.msg === 'request' && l.verb === 'list').map((l) => `${l.path as string} ${(l.fieldSelector as string | undefined) ?? ''}`))
  await waitFor(() => relisted().size === 4, { what: 're-lists of all four collections', timeoutMs: 60_000 })
  const resumed = fresh().filter((l) => l.msg === 'request' && l.verb === 'watch' && Number(l.resourceVersion) < started.resourceVersion)
  t.ok(resumed.length > 0, `watches resumed from the old server's resourceVersions (answered 410 Gone): ${resumed.length}`)
  const since = nodeLog(lab, 'n1').slice(agentLines)
  t.notOk(since.some((l) => l.msg === 'pod unenrolled'), 'no pod unenrolled across the restart')
  t.same((await debugPods()).map((p) => p.uid).sort(), enrolledBefore, 'the same pods enrolled')
  t.equal(await readyStatus(), '200')
  // And the new server's changes reach the agent: a Service added now is routed.
  await editCluster((items) => [...items, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'server-a-only', namespace: 'app' }, spec: { type: 'ClusterIP', selector: { app: 'server' }, ports: [{ port: 81, targetPort: 8080, protocol: 'TCP' }], clusterIP: '10.96.0.77', clusterIPs: ['10.96.0.77'], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' } }])
  await waitFor(() => nodeLog(lab, 'n1').slice(agentLines).some((l) => l.msg === 'cluster snapshot' && l.services === 2), { what: 'a snapshot with the new Service', timeoutMs: 20_000 })
  const r = await execInPod(lab, 'app', 'client', ['curl', '-sS', '--max-time', '5', 'http://10.96.0.77:81/'])
  t.match(r.stdout, /^server-[ab] 8080 /, 'the new Service routes')
})

t.test('SIGTERM drains a real agent: not ready, new connections refused, a live one carries on, exit when it ends, pins kept', async (t) => {
  const [pid] = agentPids(pinRoot)
  t.ok(pid > 0, 'the agent runs')
  const target = pod(lab, 'app', 'server-a').ips[0]
  const client = holdConnection(target, 8080)
  t.teardown(() => { client.kill('SIGKILL') })
  await client.expect(/"data":"HTTP\/1\.1 200/, 'a first response on the held connection')
  const uids = state().plan.pods.map((p) => p.uid)

  process.kill(pid, 'SIGTERM')
  await waitFor(async () => await readyStatus() === '503', { what: 'readiness 503 while draining' })
  t.ok(nodeLog(lab, 'n1').some((l) => l.msg === 'draining: not ready, no new connections; waiting for live connections to finish' && l.connections >= 1), 'draining, with the live connection counted')
  client.send('new')
  await client.expect(/"new":"ECONNREFUSED"/, 'a new connection refused')
  client.send('req')
  await client.expect(/"data":"HTTP\/1\.1 200[^]*"data":"HTTP\/1\.1 200/, 'a second response on the held connection, during the drain')
  t.ok(agentPids(pinRoot).includes(pid), 'the agent waits for it')

  const ended = Date.now()
  client.send('end')
  await waitFor(() => !agentPids(pinRoot).includes(pid), { what: 'the agent to exit', timeoutMs: 20_000 })
  const took = Date.now() - ended
  t.ok(took < 20_000, `exited ${took} ms after the last connection ended (grace 25 s)`)
  t.ok(nodeLog(lab, 'n1').some((l) => l.msg === 'drained: no live connections left'), 'drained')
  for (const uid of uids) t.ok(existsSync(join(pinRoot, 'pods', uid)), `pins of ${uid} kept for the next agent`)

  await ferryOk(['lab', 'restart', '--lab', lab, '--node', 'n1'], { timeoutMs: 60_000 })
  await capturedRequest(lab, target)
})

t.test('down removes the API server, the sandboxes, the late pod\'s netns and every cgroup', async (t) => {
  const s = state()
  const pids = Object.values(s.pids)
  await ferryOk(['lab', 'down', lab], { timeoutMs: 60_000 })
  downDone = true
  t.same(labNetns(lab), [], 'no network namespace (the late pod\'s included)')
  t.notOk(existsSync(s.plan.cgroupRoot), 'no cgroup')
  t.notOk(existsSync(pinRoot), 'no pins')
  // (A killed process may linger as a zombie until its parent reaps it: poll.)
  const left = (): number[] => pids.filter((p) => procCgroup(p)?.startsWith(`/ferry-lab-${lab}/`) === true)
  await waitFor(() => left().length === 0, { what: `no process of the lab left (${left().join(', ')})` })
  t.pass('no process of the lab (API server, sandboxes, agent, containers)')
})

/** A client in the client pod holding one keep-alive HTTP connection, driven line by line: req, new, end. */
function holdConnection (host: string, port: number): ChildProcessWithoutNullStreams & { send: (cmd: string) => void, expect: (re: RegExp, what: string) => Promise<void> } {
  const script = `
    const net = require('net'); const rl = require('readline').createInterface({ input: process.stdin })
    const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
    const req = () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
    const s = net.connect(${port}, '${host}', req)
    s.on('data', (d) => say({ data: String(d) })); s.on('error', (e) => say({ error: e.code })); s.on('close', () => process.exit(0))
    rl.on('line', (l) => {
      if (l === 'req') req()
      if (l === 'end') s.end()
      if (l === 'new') { const n = net.connect(${port}, '${host}'); n.on('connect', () => { say({ new: 'connected' }); n.destroy() }); n.on('error', (e) => say({ new: e.code })) }
    })`
  const child = spawn(process.execPath, [FERRY, 'lab', 'exec', '--lab', lab, 'client', '-n', 'app', '--', process.execPath, '-e', script], { stdio: 'pipe' })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { out += String(d) })
  return Object.assign(child, {
    send: (cmd: string) => { child.stdin.write(`${cmd}\n`) },
    expect: async (re: RegExp, what: string) => { await waitFor(() => re.test(out), { what: `${what} (client said: ${out.slice(-300)})`, timeoutMs: 15_000 }) }
  })
}
