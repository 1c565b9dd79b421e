import { parseClusterList } from '../discovery/cluster-list'
import { isMeshed } from '../discovery/mesh-policy'

// Which pods each node's agent should enroll, decided by the agent's own discovery code
// reading the very cluster file the agent reads — so the lab and the mesh cannot
// disagree on what "meshed" means. Reading it back also checks the file the lab wrote.

/** Node name → uids of its meshed pods. */
export function expectedEnrollment (clusterJson: string, origin: string): Map<string, string[]> {
  const snap = parseClusterList(clusterJson, origin, 1)
  const namespaces = new Map(snap.namespaces.map((n) => [n.name, n]))
  const out = new Map<string, string[]>(snap.nodes.map((n) => [n.name, []]))
  for (const pod of snap.pods) {
    if (pod.nodeName === null || !isMeshed(pod, namespaces.get(pod.namespace))) continue
    out.get(pod.nodeName)?.push(pod.uid)
  }
  return out
}
