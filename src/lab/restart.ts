import { readFileSync } from 'node:fs'
import { ferryError } from '../errors'
import { killCgroup, makeCgroup, signalCgroup, waitEmpty } from './cgroup'
import { Deadline, sleep } from './clock'
import { expectedEnrollment } from './enrollment'
import { Prober } from './probe'
import { waitForAgents, waitForController, waitForUnderlayListener, Watched } from './readiness'
import { spawnAgent, spawnApiServer, spawnController } from './spawn'
import { journal, writeState, type LabState } from './state'

// `ferry lab restart --node NODE`: the lab playing kubelet restarting a node's agent
// (a DaemonSet pod crash or rollout). The old agent is stopped with the given signal —
// SIGKILL leaves it no chance to clean up, which is the case capture must survive —
// then a new agent starts with the same command line and must report every meshed pod
// of the node enrolled again. Pinned maps and links are the new agent's to reuse.
//
// `ferry lab restart --api-server` (--kubernetes-api labs): the same for the lab's API
// server. The new one has no history (its resourceVersions are all newer), so every
// agent's watch resumes into 410 Gone and re-lists, as after an etcd compaction.
//
// `ferry lab restart --controller`: the same for the lab's CA. It starts again from its
// data directory (same root, so agents keep trusting it) with the same node tokens. It
// also starts a controller that is not running (one killed by a test, say); with
// `downForMs` it stays stopped that long first, for agents to notice.

export interface RestartOptions {
  readonly node: string
  readonly signal: 'SIGTERM' | 'SIGKILL'
  readonly timeoutMs: number
  /** argv that runs Ferry's CLI (tests run it from source). */
  readonly ferryArgv?: readonly string[]
}

const STOP_GRACE_MS = 5_000

async function stopCgroup (cgroup: string, signal: NodeJS.Signals, what: string): Promise<number> {
  const pids = signalCgroup(cgroup, signal)
  if (!await waitEmpty(cgroup, STOP_GRACE_MS) && !await killCgroup(cgroup, STOP_GRACE_MS)) {
    throw ferryError('FERRY_ERR_LAB', `${what} did not stop (cgroup ${cgroup})`)
  }
  return pids
}

export async function restartAgent (state: LabState, opts: RestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  if (!plan.mesh) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} runs without the mesh (--no-mesh): it has no agents to restart`)
  const node = plan.nodes.find((n) => n.name === opts.node)
  if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node "${opts.node}" (nodes: ${plan.nodes.map((n) => n.name).join(', ')})`)

  journal(plan.stateFile, state, `restart agent ${node.name} (${opts.signal})`)
  const oldPids = await stopCgroup(node.agentCgroup, opts.signal, `the agent of node ${node.name}`)

  const child = spawnAgent(plan, node, opts.ferryArgv)
  if (child.pid !== undefined) state.pids[`node/${node.name}`] = child.pid
  writeState(plan.stateFile, state)
  const expected = expectedEnrollment(readFileSync(plan.clusterFile, 'utf8'), plan.clusterFile)
  const agents = new Map([[node.name, new Watched(`the agent of node ${node.name}`, node.agentLog, child)]])
  const prober = new Prober()
  try {
    await waitForAgents({ ...plan, nodes: [node] }, agents, expected, prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { oldPids, newPid: child.pid }
}

export interface ControllerRestartOptions {
  readonly signal: 'SIGTERM' | 'SIGKILL'
  readonly timeoutMs: number
  /** Keep the controller stopped this long before starting it again. */
  readonly downForMs?: number
  readonly ferryArgv?: readonly string[]
}

export async function restartController (state: LabState, opts: ControllerRestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  const ca = plan.controller ?? null
  if (ca === null) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} has no controller (it runs without the mesh, or was made before the lab ran one)`)

  journal(plan.stateFile, state, `restart controller (${opts.signal})`)
  const oldPids = await stopCgroup(ca.cgroup, opts.signal, 'the lab\'s controller')
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)

  makeCgroup(ca.cgroup)
  const child = spawnController(plan, ca, opts.ferryArgv)
  if (child.pid !== undefined) state.pids.controller = child.pid
  writeState(plan.stateFile, state)
  const prober = new Prober()
  try {
    await waitForController(plan, ca, new Watched('the lab\'s controller', ca.log, child), prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { oldPids, newPid: child.pid }
}

export async function restartApiServer (state: LabState, opts: ControllerRestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  const api = plan.kubernetesApi ?? null
  if (api === null) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} has no API server (it was made without --kubernetes-api)`)

  journal(plan.stateFile, state, `restart api server (${opts.signal})`)
  const oldPids = await stopCgroup(api.cgroup, opts.signal, 'the lab\'s API server')
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)

  makeCgroup(api.cgroup)
  const child = spawnApiServer(plan, api, opts.ferryArgv)
  if (child.pid !== undefined) state.pids['api-server'] = child.pid
  writeState(plan.stateFile, state)
  const prober = new Prober()
  try {
    await waitForUnderlayListener(plan, 'the lab\'s API server', api, new Watched('the lab\'s API server', api.log, child), prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { oldPids, newPid: child.pid }
}
