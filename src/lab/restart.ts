import { readFileSync } from 'node:fs'
import { DRAIN_GRACE_DEFAULT_MS } from '../agent/options'
import { ferryError } from '../errors'
import { HANDED_OFF_MESSAGE } from '../handoff/server'
import { cgroupPids, isPopulated, killCgroup, makeCgroup, signalCgroup, waitEmpty } from './cgroup'
import { Deadline, sleep } from './clock'
import { expectedEnrollment } from './enrollment'
import { Prober } from './probe'
import { isRunning } from './proc'
import { waitForAgents, waitForController, waitForLogLine, waitForUnderlayListener, Watched } from './readiness'
import { labHandoffSocket, spawnAgent, spawnApiServer, spawnController, spawnKubelet } from './spawn'
import { updateState, type LabState } from './state'
import type { PlanNode } from './topology'

// `ferry lab restart --node NODE`: the lab playing kubelet restarting a node's agent
// (a DaemonSet pod crash). The old agent is killed — SIGKILL leaves it no chance to
// clean up, which is the case capture must survive — then a new agent starts with the
// same command line and must report every meshed pod of the node enrolled again.
// Pinned maps and links are the new agent's to reuse.
//
// `--signal TERM` plays the DaemonSet's rolling update instead (maxSurge 1): the new
// agent starts first, beside the old one, with the same command line; it takes the old
// one's listening sockets over through the node's handoff socket (src/handoff/), serves
// beside it, and commits once ready — the old one then stops accepting (it logs
// HANDED_OFF_MESSAGE). Once the new agent also answers ready with every meshed pod of
// the node enrolled, the old one gets SIGTERM, drains and exits. If the new agent does
// not get there, it is killed and the old one serves on.
// `stop --node` and `start --node` are its two halves, for tests that do things (start
// pods, say) while a node has no agent; `restart --kubelet NODE` restarts a kubelet.
// The lab's state is changed under its lock (`apply` may run meanwhile).
//
// `ferry lab restart --api-server` (--kubernetes-api labs): the same for the lab's API
// server. The new one has no history (its resourceVersions are all newer), so every
// agent's watch resumes into 410 Gone and re-lists, as after an etcd compaction.
//
// `ferry lab restart --controller`: the same for the lab's CA. It starts again from its
// data directory (same root, so agents keep trusting it) with the same node tokens. It
// also starts a controller that is not running (one killed by a test, say); with
// `downForMs` it stays stopped that long first, for agents to notice. `stop --controller`
// and `start --controller` are its two halves, for an outage whose end the caller
// chooses (a test reads the agents' state meanwhile).

export interface RestartOptions {
  readonly node: string
  readonly signal: 'SIGTERM' | 'SIGKILL'
  readonly timeoutMs: number
  /** Keep the agent stopped this long before starting it again. */
  readonly downForMs?: number
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

/** A started process, in the lab's state on disk and in the caller's copy. */
async function recordPid (state: LabState, key: string, pid: number): Promise<void> {
  await updateState(state.plan.stateFile, (s) => { s.pids[key] = pid })
  state.pids[key] = pid
}

function agentNode (state: LabState, name: string): PlanNode {
  const plan = state.plan
  if (!plan.mesh) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} runs without the mesh (--no-mesh): it has no agents`)
  return labNode(state, name)
}

function labNode (state: LabState, name: string): PlanNode {
  const node = state.plan.nodes.find((n) => n.name === name)
  if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node "${name}" (nodes: ${state.plan.nodes.map((n) => n.name).join(', ')})`)
  return node
}

export async function restartAgent (state: LabState, opts: RestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  // A rollout has no time without an agent: downForMs does not apply (the CLI refuses it).
  if (opts.signal === 'SIGTERM') return await rollAgent(state, opts)
  const { oldPids } = await stopAgent(state, opts)
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)
  const { newPid } = await startAgent(state, opts)
  return { oldPids, newPid }
}

/**
 * The rollout (`restart --node NODE --signal TERM`): a new agent beside the old one, the
 * old one's sockets handed over, then SIGTERM to the old one once the new one is ready.
 */
async function rollAgent (state: LabState, opts: RestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const node = agentNode(state, opts.node)
  const plan = state.plan
  const old = cgroupPids(node.agentCgroup)
  if (old.length === 0) throw ferryError('FERRY_ERR_LAB', `the agent of node ${node.name} is not running: start it with \`ferry lab start --node ${node.name}\``)
  await updateState(plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `roll agent ${node.name}: a new agent beside pid ${old.join(', ')}, then SIGTERM` }) })
  const deadline = new Deadline(opts.timeoutMs)
  const child = spawnAgent(plan, node, opts.ferryArgv)
  const fresh = new Watched(`the new agent of node ${node.name} (taking over from pid ${old.join(', ')} through ${labHandoffSocket(plan, node)})`, node.agentLog, child)
  const expected = expectedEnrollment(readFileSync(plan.clusterFile, 'utf8'), plan.clusterFile)
  const prober = new Prober()
  try {
    // Until the old agent has stopped accepting, it may be the one answering readiness.
    await waitForLogLine(fresh, (l) => l.msg === HANDED_OFF_MESSAGE && old.includes(l.pid as number), deadline)
    await waitForAgents({ ...plan, nodes: [node] }, new Map([[node.name, fresh]]), expected, prober, deadline)
  } catch (err) {
    // The old agent serves on: a new one that never took over (or never got ready) leaves,
    // draining what it accepted beside the old one.
    if (child.pid !== undefined) await stopPids([child.pid], STOP_GRACE_MS, 'the new agent')
    throw err
  } finally {
    prober.close()
  }
  if (child.pid !== undefined) await recordPid(state, `node/${node.name}`, child.pid)
  // The old agent drains (its --drain-grace) and exits.
  await stopPids(old, (plan.drainGraceMs ?? DRAIN_GRACE_DEFAULT_MS) + STOP_GRACE_MS, `the old agent of node ${node.name}`)
  return { oldPids: old.length, newPid: child.pid }
}

/** SIGTERM, `graceMs` to exit, then SIGKILL. */
async function stopPids (pids: readonly number[], graceMs: number, what: string): Promise<void> {
  for (const pid of pids) { try { process.kill(pid, 'SIGTERM') } catch {} }
  if (await waitExited(pids, graceMs)) return
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
  if (!await waitExited(pids, STOP_GRACE_MS)) throw ferryError('FERRY_ERR_LAB', `${what} (pid ${pids.join(', ')}) did not exit`)
}

async function waitExited (pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = new Deadline(timeoutMs)
  while (pids.some((pid) => isRunning(pid))) {
    if (deadline.expired) return false
    await sleep(50)
  }
  return true
}

/**
 * `ferry lab stop --node NODE`: the node's agent stopped (SIGKILL by default, as in a
 * crash) and left stopped, its pods running on — what a node sees while its agent's
 * DaemonSet pod is down. Pins stay in place.
 */
export async function stopAgent (state: LabState, opts: Pick<RestartOptions, 'node' | 'signal'>): Promise<{ oldPids: number }> {
  const node = agentNode(state, opts.node)
  await updateState(state.plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `stop agent ${node.name} (${opts.signal})` }) })
  const oldPids = await stopCgroup(node.agentCgroup, opts.signal, `the agent of node ${node.name}`)
  await updateState(state.plan.stateFile, (s) => { delete s.pids[`node/${node.name}`] })
  delete state.pids[`node/${node.name}`]
  return { oldPids }
}

/**
 * `ferry lab start --node NODE`: starts the node's agent with its usual command line
 * (refused while one runs) and returns when it reports every meshed pod of the node
 * enrolled.
 */
export async function startAgent (state: LabState, opts: Pick<RestartOptions, 'node' | 'timeoutMs' | 'ferryArgv'>): Promise<{ newPid: number | undefined }> {
  const node = agentNode(state, opts.node)
  const plan = state.plan
  if (isPopulated(node.agentCgroup)) throw ferryError('FERRY_ERR_LAB', `the agent of node ${node.name} is running (cgroup ${node.agentCgroup}); stop it first`)
  await updateState(plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `start agent ${node.name}` }) })
  makeCgroup(node.agentCgroup)
  const child = spawnAgent(plan, node, opts.ferryArgv)
  if (child.pid !== undefined) await recordPid(state, `node/${node.name}`, child.pid)
  const expected = expectedEnrollment(readFileSync(plan.clusterFile, 'utf8'), plan.clusterFile)
  const agents = new Map([[node.name, new Watched(`the agent of node ${node.name}`, node.agentLog, child)]])
  const prober = new Prober()
  try {
    await waitForAgents({ ...plan, nodes: [node] }, agents, expected, prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { newPid: child.pid }
}

/**
 * `ferry lab restart --kubelet NODE`: the node's kubelet stopped and started again; it
 * reads back its records of the containers it restarted, and probes afresh (as a
 * kubelet does after a restart). Returns once the new one has logged its start.
 */
export async function restartKubelet (state: LabState, opts: RestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  const node = labNode(state, opts.node)
  await updateState(plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `restart kubelet ${node.name} (${opts.signal})` }) })
  const oldPids = await stopCgroup(node.kubeletCgroup, opts.signal, `the kubelet of node ${node.name}`)
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)
  makeCgroup(node.kubeletCgroup)
  const child = spawnKubelet(plan, node, opts.ferryArgv)
  if (child.pid !== undefined) await recordPid(state, `kubelet/${node.name}`, child.pid)
  await waitForLogLine(new Watched(`the kubelet of node ${node.name}`, node.kubeletLog, child), (l) => l.msg === 'kubelet started' && l.pid === child.pid, new Deadline(opts.timeoutMs))
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
  const { oldPids } = await stopController(state, opts)
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)
  const { newPid } = await startController(state, opts)
  return { oldPids, newPid }
}

function labController (state: LabState): NonNullable<LabState['plan']['controller']> {
  const ca = state.plan.controller ?? null
  if (ca === null) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} has no controller (it runs without the mesh, or was made before the lab ran one)`)
  return ca
}

/**
 * `ferry lab stop --controller`: the lab's CA stopped and left stopped — a control-plane
 * outage. Agents keep serving on the certificates in hand and retry their renewals.
 */
export async function stopController (state: LabState, opts: Pick<ControllerRestartOptions, 'signal'>): Promise<{ oldPids: number }> {
  const ca = labController(state)
  await updateState(state.plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `stop controller (${opts.signal})` }) })
  const oldPids = await stopCgroup(ca.cgroup, opts.signal, 'the lab\'s controller')
  await updateState(state.plan.stateFile, (s) => { delete s.pids.controller })
  delete state.pids.controller
  return { oldPids }
}

/**
 * `ferry lab start --controller`: starts the lab's CA from its data directory (same
 * root, same node tokens; refused while one runs) and returns once it accepts
 * connections.
 */
export async function startController (state: LabState, opts: Pick<ControllerRestartOptions, 'timeoutMs' | 'ferryArgv'>): Promise<{ newPid: number | undefined }> {
  const plan = state.plan
  const ca = labController(state)
  if (isPopulated(ca.cgroup)) throw ferryError('FERRY_ERR_LAB', `the lab's controller is running (cgroup ${ca.cgroup}); stop it first`)
  await updateState(plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: 'start controller' }) })
  makeCgroup(ca.cgroup)
  const child = spawnController(plan, ca, opts.ferryArgv)
  if (child.pid !== undefined) await recordPid(state, 'controller', child.pid)
  const prober = new Prober()
  try {
    await waitForController(plan, ca, new Watched('the lab\'s controller', ca.log, child), prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { newPid: child.pid }
}

export async function restartApiServer (state: LabState, opts: ControllerRestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  const api = plan.kubernetesApi ?? null
  if (api === null) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} has no API server (it was made without --kubernetes-api)`)

  await updateState(plan.stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: `restart api server (${opts.signal})` }) })
  const oldPids = await stopCgroup(api.cgroup, opts.signal, 'the lab\'s API server')
  if (opts.downForMs !== undefined && opts.downForMs > 0) await sleep(opts.downForMs)

  makeCgroup(api.cgroup)
  const child = spawnApiServer(plan, api, opts.ferryArgv)
  if (child.pid !== undefined) await recordPid(state, 'api-server', child.pid)
  const prober = new Prober()
  try {
    await waitForUnderlayListener(plan, 'the lab\'s API server', api, new Watched('the lab\'s API server', api.log, child), prober, new Deadline(opts.timeoutMs))
  } finally {
    prober.close()
  }
  return { oldPids, newPid: child.pid }
}
