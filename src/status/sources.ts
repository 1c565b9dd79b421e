import { ferryError } from '../errors'
import { labAgentEndpoint, type AgentEndpoint } from '../lab/agent-admin'
import { loadLab, resolveLabName } from '../lab/labs'

// Where `ferry status` finds the agents of a mesh. A lab knows its nodes and reaches
// each agent inside the node's network namespace with the lab's admin token; a cluster
// (later) will list the DaemonSet's pods.

export interface MeshAgents {
  /** What is shown: "lab shop". */
  readonly mesh: string
  readonly agents: ReadonlyArray<{ readonly node: string, readonly endpoint: () => AgentEndpoint }>
}

/** The agents of the lab named (or the only one up). */
export function labAgents (name: string | undefined): MeshAgents {
  const state = loadLab(resolveLabName(name))
  if (!state.plan.mesh) throw ferryError('FERRY_ERR_INVALID_ARG', `lab ${state.name} runs without the mesh (--no-mesh): it has no agents`)
  return {
    mesh: `lab ${state.name}`,
    agents: state.plan.nodes.map((n) => ({ node: n.name, endpoint: () => labAgentEndpoint(state.name, n.name) }))
  }
}
