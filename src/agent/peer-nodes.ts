import type { ClusterSnapshot } from '../discovery/model'

// The peer nodes of this one, as the tunnel sees them: the nodes that run the cluster's
// other pods, whose tunnel pools dial this node's port 15008. Their addresses are
// exempt from the kernel's per-source SYN rate on that port (src/agent/node-tunnel.ts
// says why).

/** The addresses (status.hostIPs) of the nodes other than `node` that run pods of the snapshot. */
export function peerNodeAddresses (s: ClusterSnapshot, node: string): string[] {
  const out = new Set<string>()
  for (const p of s.pods) if (p.nodeName !== null && p.nodeName !== node) for (const ip of p.hostIPs) out.add(ip)
  return [...out]
}
