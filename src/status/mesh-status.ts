import { readNodeStatus, type NodeStatus, type ReadOptions } from './node-status'
import type { MeshAgents } from './sources'

// The mesh as `ferry status` shows it: every node's agent, asked at once.

export interface MeshStatus {
  readonly mesh: string
  /** When it was read (ISO 8601). */
  readonly at: string
  readonly nodes: NodeStatus[]
}

export async function readMeshStatus (agents: MeshAgents, o: ReadOptions): Promise<MeshStatus> {
  const at = new Date().toISOString()
  const nodes = await Promise.all(agents.agents.map(async (a) => await readNodeStatus(a.node, a.endpoint(), o)))
  return { mesh: agents.mesh, at, nodes }
}
