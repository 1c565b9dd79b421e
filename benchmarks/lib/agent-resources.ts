import { labAgentResources, type AgentResources } from '../../src/lab/agent-resources'
import type { Lab } from './lab'

// What a lab node's agent holds now (descriptors, RSS, heap after a full collection,
// entries of its pinned maps, pinned links, cgroup attachments): src/lab/agent-resources.ts
// reads them, from /proc, the node's pin root, bpftool and the agent's POST /debug/memory.

export type { AgentResources }

export async function agentResources (lab: Lab, node: string): Promise<AgentResources> {
  return await labAgentResources(lab.name, node)
}
