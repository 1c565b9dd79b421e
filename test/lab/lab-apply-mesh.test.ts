import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PORTS } from '../../src/config/env'
import { labApplyFiles, labDeleteFiles } from '../../src/lab/apply'
import { isPopulated } from '../../src/lab/cgroup'
import { labDown } from '../../src/lab/down'
import { execArgv } from '../../src/lab/exec'
import { loadLab } from '../../src/lab/labs'
import { Prober } from '../../src/lab/probe'
import { READY_PATH, type AgentReadiness } from '../../src/lab/readiness'
import { startAgent, stopAgent } from '../../src/lab/restart'
import type { LabState } from '../../src/lab/state'
import { netnsPath } from '../../src/lab/topology'
import { labUp } from '../../src/lab/up'
import { everythingLeft, FIXTURES, labFerryArgv, forceDown, IS_ROOT, isMeshBuilt, manifestFile, recordedPids, REPO, runArgv } from './helpers'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// With the mesh, pods started while their node's agent is down (`ferry lab stop --node`):
// the lab's runtime calls the node's chained CNI plugins before a pod's containers start,
// and Ferry's ferry-cni is among them. A meshed pod is held back (ADD fails, the runtime
// retries) until the agent is back (`ferry lab start --node`) and has enrolled it, so its
// first connection — made by its program as it starts — goes through the mesh; pods of
// a namespace that is not meshed, and kube-system's, start at once. Deleting a pod takes
// it out of the agent's enrolled pods. Then probes under STRICT.

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const opts = skip === undefined ? {} : { skip }
const lab = uniqueLabName('lapm')
const LATE = `apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: hello, labels: {app: late}}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: main\n      command: [sh, -c, 'echo "first request: $(curl -sS -o /dev/null -w %{http_code} --max-time 5 http://hello:8080/)"; exec node ${join(FIXTURES, 'probe-target.js')}']\n      ports: [{containerPort: 8080}]\n`
/** A namespace the mesh does not concern, and kube-system (labelled: the plugin never holds it back anyway). */
const OTHERS = ['apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system, labels: {ferry.dev/mesh: enabled}}',
  ...['plain/loose', 'kube-system/sys'].map((k) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${k.split('/')[1]}, namespace: ${k.split('/')[0]}}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: main\n      command: [sleep, infinity]\n`)].join('\n---\n')
let state: LabState
let lateFile: string

t.before(async () => {
  if (skip !== undefined) return
  state = await labUp({ name: lab, files: [join(REPO, 'examples/hello/hello.yaml')], mesh: true, timeoutMs: 90_000, ferryArgv: labFerryArgv() })
  lateFile = manifestFile(LATE)
})
t.teardown(async () => { await forceDown(lab) })

async function readiness (): Promise<AgentReadiness | null> {
  const prober = new Prober()
  try {
    const r = await prober.httpGet(netnsPath(state.plan.paths, state.plan.nodes[0].netns), '127.0.0.1', PORTS.ready, READY_PATH, 2000)
    return r === null ? null : JSON.parse(r.body) as AgentReadiness
  } finally {
    prober.close()
  }
}

t.test('a pod started while its node\'s agent is down waits for it, and its first connection goes through the mesh; unmeshed and kube-system pods do not wait', opts, async (t) => {
  const node = state.plan.nodes[0]
  const stopped = await stopAgent(state, { node: 'node1', signal: 'SIGKILL' })
  t.ok(stopped.oldPids >= 1)
  t.notOk(isPopulated(node.agentCgroup), 'no agent on node1')
  t.equal(loadLab(lab).pids['node/node1'], undefined)

  // Pods the mesh does not concern start while the agent is down.
  const others = await labApplyFiles(loadLab(lab), [manifestFile(OTHERS)], { timeoutMs: 60_000 })
  t.same(others.created.filter((c) => c.startsWith('pod/')).sort(), ['pod/kube-system/sys', 'pod/plain/loose'], 'a pod of an unmeshed namespace and one of kube-system run with no agent')

  // The meshed one is held back: its ADD fails while nothing answers on the agent's socket.
  const applied = labApplyFiles(loadLab(lab), [lateFile], { timeoutMs: 90_000 })
  applied.catch(() => {})
  const cniLog = (): any[] => existsSync(node.cni.log) ? readFileSync(node.cni.log, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) : []
  await waitFor(() => cniLog().some((l) => l.pod === 'hello/late' && l.command === 'ADD' && l.plugin === 'ferry-cni' && l.result === 'error'), { timeoutMs: 30_000, what: 'a failed ADD of the late pod' })
  const late = (): ReturnType<typeof loadLab>['plan']['pods'][number] | undefined => loadLab(lab).plan.pods.find((p) => p.name === 'late')
  t.notOk(late() !== undefined && isPopulated(late()!.cgroup), 'no process of the late pod runs while the agent is down')

  const started = await startAgent(loadLab(lab), { node: 'node1', timeoutMs: 60_000, ferryArgv: labFerryArgv() })
  t.ok((started.newPid ?? 0) > 0)
  t.same((await applied).created, ['pod/hello/late'], 'the late pod starts once the agent is back')
  const p = late()
  if (p === undefined) throw new Error('late is not in the lab')
  t.ok((await readiness())?.enrolled?.includes(p.uid), 'enrolled by the agent')
  // Its program's first connection, made as it started: through the mesh.
  const nodeLog = (): any[] => readFileSync(node.agentLog, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  const first = await waitFor(() => nodeLog().find((l) => l.msg === 'access' && l.direction === 'outbound' && l.source?.pod === 'late'),
    { what: 'the late pod\'s first connection in the access log' })
  t.match(first, { original_destination: /:8080$/, destination_service: 'hello.hello', result: 'ok' })
  t.match(readFileSync(p.containers[0].log, 'utf8'), /first request: 200/, 'and it was answered')
})

t.test('deleting it takes it out of the agent\'s enrolled pods', opts, async (t) => {
  const late = loadLab(lab).plan.pods.find((p) => p.name === 'late')
  const r = await labDeleteFiles(loadLab(lab), [lateFile])
  t.same(r.deleted, ['pod/hello/late'])
  await waitFor(async () => (await readiness())?.enrolled?.includes(late?.uid as string) === false, { timeoutMs: 15_000, what: 'late unenrolled' })
  t.pass('unenrolled')
})

t.test('under STRICT, the kubelet\'s probes reach a meshed pod (from its cgroup: the agent admits them) and its Ready follows them; the same connection from elsewhere on the node is refused; a pod not ready gets no requests through its Service', opts, async (t) => {
  const flags = mkdtempSync(join(tmpdir(), 'ferry-probed-'))
  t.teardown(() => { rmSync(flags, { recursive: true, force: true }) })
  // A second endpoint of Service hello (label app: hello), answering "ok" where the server answers "hello from …".
  const probed = LATE.replace(/late/g, 'probed').replace('labels: {app: probed}', 'labels: {app: hello}')
    .replace(/command: \[sh, -c, .*\]\n/, `command: [node, ${join(FIXTURES, 'probe-target.js')}]\n      env: [{name: FLAGS, value: ${flags}}]\n`)
    .replace('      ports: [{containerPort: 8080}]\n', '      ports: [{name: http, containerPort: 8080}]\n      readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1, failureThreshold: 1}\n')
  const r = await labApplyFiles(loadLab(lab), [manifestFile(probed)], { timeoutMs: 60_000 })
  t.same(r.created, ['pod/hello/probed'])
  const p = loadLab(lab).plan.pods.find((x) => x.name === 'probed')
  if (p === undefined) throw new Error('probed is not in the lab')
  const readyOf = (): string | undefined => JSON.parse(readFileSync(state.plan.clusterFile, 'utf8')).items.find((o: any) => o.kind === 'Pod' && o.metadata.name === 'probed')?.status?.conditions?.find((c: any) => c.type === 'Ready')?.status
  await waitFor(() => readyOf() === 'True', { timeoutMs: 30_000, what: 'probed Ready through the mesh' })
  const requests = readFileSync(p.containers[0].log, 'utf8').split('\n').filter((l) => l.includes('"event":"request"')).map((l) => JSON.parse(l))
  t.ok(requests.length >= 1)
  t.same([...new Set(requests.map((l) => l.peer))], ['172.30.0.1'], 'straight from the kubelet, at the node\'s address')
  const other = runArgv(['nsenter', `--net=/var/run/netns/${state.plan.nodes[0].netns}`, 'curl', '-sS', '--max-time', '3', `http://${p.ipv4}:8080/ready`])
  t.not(other.code, 0, 'plaintext from the node\'s namespace but not the kubelet\'s cgroup is refused (STRICT)')

  // Through the Service: both endpoints while both are ready; only the server while probed is not.
  const answers = (n: number): string[] => Array.from({ length: n }, () => runArgv(execArgv(loadLab(lab), { kind: 'pod', namespace: 'hello', name: 'client' }, ['curl', '-sS', '-4', '--max-time', '5', 'http://hello:8080/'])).stdout.trim())
  await waitFor(() => answers(4).includes('ok'), { timeoutMs: 20_000, what: 'probed serving through the Service' })
  writeFileSync(join(flags, 'not-ready'), '')
  await waitFor(() => readyOf() === 'False', { timeoutMs: 20_000, what: 'probed not Ready' })
  await waitFor(() => !answers(4).includes('ok'), { timeoutMs: 20_000, what: 'the agent routing around probed' })
  const routed = answers(10)
  t.ok(routed.every((a) => a.startsWith('hello from server')), `not ready: every request to the Service served by the other endpoint (${JSON.stringify(routed)})`)
  rmSync(join(flags, 'not-ready'))
  await waitFor(() => readyOf() === 'True', { timeoutMs: 20_000, what: 'probed Ready again' })
  await waitFor(() => answers(4).includes('ok'), { timeoutMs: 20_000, what: 'probed an endpoint again' })
  t.pass('ready again: it serves through the Service again')
})

t.test('down leaves nothing', opts, async (t) => {
  const pids = recordedPids(lab)
  await labDown(lab)
  t.same(everythingLeft(lab, pids), [])
})
