import { type AgentReply, getAgentJson, labAgentEndpoint } from '../../src/lab/agent-admin'

// A lab node agent's admin (:15020) or readiness (:15021) answer, fetched in-process
// from inside the node's network namespace (src/lab/agent-admin.ts), as JSON. Much
// cheaper than `ferry lab exec --node … curl` when a test polls.

export async function agentGet (lab: string, node: string, path: string, port?: number, method?: 'GET' | 'POST'): Promise<AgentReply> {
  const endpoint = labAgentEndpoint(lab, node)
  try {
    return await getAgentJson(endpoint, path, { timeoutMs: 5000, port, method })
  } finally {
    endpoint.close()
  }
}
