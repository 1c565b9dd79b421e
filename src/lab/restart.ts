import { readFileSync } from 'node:fs'
import { ferryError } from '../errors'
import { killCgroup, signalCgroup, waitEmpty } from './cgroup'
import { Deadline } from './clock'
import { expectedEnrollment } from './enrollment'
import { Prober } from './probe'
import { waitForAgents, Watched } from './readiness'
import { spawnAgent } from './spawn'
import { journal, writeState, type LabState } from './state'

// `ferry lab restart --node NODE`: the lab playing kubelet restarting a node's agent
// (a DaemonSet pod crash or rollout). The old agent is stopped with the given signal —
// SIGKILL leaves it no chance to clean up, which is the case capture must survive —
// then a new agent starts with the same command line and must report every meshed pod
// of the node enrolled again. Pinned maps and links are the new agent's to reuse.

export interface RestartOptions {
  readonly node: string
  readonly signal: 'SIGTERM' | 'SIGKILL'
  readonly timeoutMs: number
  /** argv that runs Ferry's CLI (tests run it from source). */
  readonly ferryArgv?: readonly string[]
}

const STOP_GRACE_MS = 5_000

export async function restartAgent (state: LabState, opts: RestartOptions): Promise<{ oldPids: number, newPid: number | undefined }> {
  const plan = state.plan
  if (!plan.mesh) throw ferryError('FERRY_ERR_LAB', `lab ${state.name} runs without the mesh (--no-mesh): it has no agents to restart`)
  const node = plan.nodes.find((n) => n.name === opts.node)
  if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node "${opts.node}" (nodes: ${plan.nodes.map((n) => n.name).join(', ')})`)

  journal(plan.stateFile, state, `restart agent ${node.name} (${opts.signal})`)
  const oldPids = signalCgroup(node.agentCgroup, opts.signal)
  if (!await waitEmpty(node.agentCgroup, STOP_GRACE_MS) && !await killCgroup(node.agentCgroup, STOP_GRACE_MS)) {
    throw ferryError('FERRY_ERR_LAB', `the agent of node ${node.name} did not stop (cgroup ${node.agentCgroup})`)
  }

  const child = spawnAgent(plan, node, opts.ferryArgv)
  if (child.pid !== undefined) state.pids[`node/${node.name}`] = child.pid
  writeState(plan.stateFile, state)
  const expected = expectedEnrollment(readFileSync(plan.clusterFile, 'utf8'), plan.clusterFile)
  const agents = new Map([[node.name, new Watched(`the agent of node ${node.name}`, node.agentLog, child)]])
  await waitForAgents({ ...plan, nodes: [node] }, agents, expected, new Prober(), new Deadline(opts.timeoutMs))
  return { oldPids, newPid: child.pid }
}
