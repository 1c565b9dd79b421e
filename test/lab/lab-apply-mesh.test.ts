import t from 'tap'
import { readFileSync } from 'node:fs'
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
import { waitFor } from '../helpers/cli'
import { everythingLeft, FIXTURES, ferryFromSource, forceDown, IS_ROOT, isMeshBuilt, manifestFile, recordedPids, REPO, runArgv, uniqueLabName } from './helpers'

// With the mesh: a pod applied while its node's agent is stopped (`ferry lab stop
// --node`) starts and runs (nothing in the lab's default CNI chain holds it back); the
// agent started again (`ferry lab start --node`) enrolls it — start returns only once
// every meshed pod of the node is enrolled — and its traffic goes through the mesh.
// Deleting it takes it out of the agent's enrolled pods.

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const opts = skip === undefined ? {} : { skip }
const lab = uniqueLabName('lapm')
const LATE = `apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: hello, labels: {app: late}}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: main\n      command: [node, ${join(FIXTURES, 'probe-target.js')}]\n      ports: [{containerPort: 8080}]\n`
let state: LabState
let lateFile: string

t.before(async () => {
  if (skip !== undefined) return
  state = await labUp({ name: lab, files: [join(REPO, 'examples/hello/hello.yaml')], mesh: true, timeoutMs: 90_000, ferryArgv: ferryFromSource() })
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

t.test('a pod applied while the node\'s agent is stopped runs; the agent started again enrolls it; its traffic is meshed', opts, async (t) => {
  const node = state.plan.nodes[0]
  const stopped = await stopAgent(state, { node: 'node1', signal: 'SIGKILL' })
  t.ok(stopped.oldPids >= 1)
  t.notOk(isPopulated(node.agentCgroup), 'no agent on node1')
  t.equal(loadLab(lab).pids['node/node1'], undefined)

  const r = await labApplyFiles(loadLab(lab), [lateFile], { timeoutMs: 60_000 })
  t.same(r.created, ['pod/hello/late'])
  const late = loadLab(lab).plan.pods.find((p) => p.name === 'late')
  if (late === undefined) throw new Error('late is not in the lab')
  t.ok(isPopulated(late.cgroup), 'it runs with no agent on its node')

  const started = await startAgent(loadLab(lab), { node: 'node1', timeoutMs: 60_000, ferryArgv: ferryFromSource() })
  t.ok((started.newPid ?? 0) > 0)
  t.ok((await readiness())?.enrolled?.includes(late.uid), 'the new agent enrolled the applied pod')

  const nodeLog = (): any[] => readFileSync(node.agentLog, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  const before = nodeLog().length
  const curl = runArgv(execArgv(loadLab(lab), { kind: 'pod', namespace: 'hello', name: 'client' }, ['curl', '-sS', '-4', '--max-time', '5', `http://${late.ipv4}:8080/ready`]))
  t.equal(curl.code, 0, curl.stderr)
  await waitFor(() => nodeLog().slice(before).some((l) => l.msg === 'access' && l.direction === 'outbound' && l.source?.pod === 'client' && l.original_destination === `${late.ipv4}:8080`),
    { what: 'the request to the applied pod in the access log' })
})

t.test('deleting it takes it out of the agent\'s enrolled pods', opts, async (t) => {
  const late = loadLab(lab).plan.pods.find((p) => p.name === 'late')
  const r = await labDeleteFiles(loadLab(lab), [lateFile])
  t.same(r.deleted, ['pod/hello/late'])
  await waitFor(async () => (await readiness())?.enrolled?.includes(late?.uid as string) === false, { timeoutMs: 15_000, what: 'late unenrolled' })
  t.pass('unenrolled')
})

t.test('under STRICT, the kubelet\'s probes reach a meshed pod (from its cgroup: the agent admits them) and its Ready follows them; the same connection from elsewhere on the node is refused', opts, async (t) => {
  const probed = LATE.replace(/late/g, 'probed').replace('      ports: [{containerPort: 8080}]\n', '      ports: [{containerPort: 8080}]\n      readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1, failureThreshold: 1}\n')
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
})

t.test('down leaves nothing', opts, async (t) => {
  const pids = recordedPids(lab)
  await labDown(lab)
  t.same(everythingLeft(lab, pids), [])
})
