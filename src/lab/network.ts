import { POD_GATEWAY, UNDERLAY } from './ipam'
import { addNetns, addVethPair, ipBatch, setSysctls } from './netns'
import { NODE_UPLINK, POD_IFNAME, netnsPath, type LabPlan, type PlanNode, type PlanPod } from './topology'

// The lab's CNI: an underlay namespace with a bridge joining the nodes, and a flat,
// routed pod network, Calico style. Each pod has a /32 and a /128 on its eth0 and a
// default route through a link-local gateway; the node routes each pod address to the
// pod's veth, and other nodes' pod CIDRs to those nodes over the underlay.
//
// The IPv4 gateway 169.254.1.1 is an address on the node's lo, so the node answers ARP
// for it on every pod veth (Calico uses proxy_arp plus the host's default route; lab
// nodes have no default route). The IPv6 gateway fe80::1 sits on each host-side veth.
// Addresses are added `nodad` so they work at once.
//
// With the mesh, the underlay bridge also carries the controller's address (a /24 like
// the nodes', so each node reaches it over its own uplink with no route to add).
//
// The *Lines functions are pure (unit-tested); the others apply them.

export function underlayLines (plan: LabPlan): string[] {
  const bridge = plan.underlay.bridge
  const lines = ['link set lo up', `link add ${bridge} type bridge`, `link set ${bridge} up`]
  if (plan.controller != null) lines.push(`addr add ${plan.controller.address}/${UNDERLAY.v4Prefix} dev ${bridge}`)
  return lines
}

export function underlayPortLines (plan: LabPlan, node: PlanNode): string[] {
  return [`link set ${node.underlayPeer} master ${plan.underlay.bridge}`, `link set ${node.underlayPeer} up`]
}

export function nodeLines (node: PlanNode): string[] {
  return [
    'link set lo up',
    `addr add ${POD_GATEWAY.v4}/32 dev lo`,
    `link set ${NODE_UPLINK} up`,
    `addr add ${node.ipv4}/${UNDERLAY.v4Prefix} dev ${NODE_UPLINK}`,
    `addr add ${node.ipv6}/${UNDERLAY.v6Prefix} dev ${NODE_UPLINK} nodad`,
    ...node.routes.map((r) => `route add ${r.cidr} via ${r.via} dev ${NODE_UPLINK}`)
  ]
}

export const NODE_SYSCTLS = Object.freeze({ 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 })

export function podLines (pod: PlanPod): string[] {
  return [
    'link set lo up',
    `link set ${POD_IFNAME} up`,
    `addr add ${pod.ipv4}/32 dev ${POD_IFNAME}`,
    `addr add ${pod.ipv6}/128 dev ${POD_IFNAME} nodad`,
    `route add ${POD_GATEWAY.v4}/32 dev ${POD_IFNAME} scope link`,
    `route add default via ${POD_GATEWAY.v4} dev ${POD_IFNAME}`,
    `route add default via ${POD_GATEWAY.v6} dev ${POD_IFNAME}`
  ]
}

/**
 * The node's routes to a pod carry the node's own addresses as their source, so that a
 * connection the node makes to a pod (the kubelet's probes) comes from the node's
 * address, as on a cluster, rather than from whichever address the kernel would pick
 * (the IPv4 gateway on lo, say).
 */
export function nodeSideOfPodLines (pod: PlanPod, node: Pick<PlanNode, 'ipv4' | 'ipv6'>): string[] {
  return [
    `link set ${pod.hostVeth} up`,
    `addr add ${POD_GATEWAY.v6}/64 dev ${pod.hostVeth} nodad`,
    `route add ${pod.ipv4}/32 dev ${pod.hostVeth} src ${node.ipv4}`,
    `route add ${pod.ipv6}/128 dev ${pod.hostVeth} src ${node.ipv6}`
  ]
}

export async function createUnderlay (plan: LabPlan): Promise<void> {
  await addNetns(plan.underlay.netns)
  await ipBatch(plan.underlay.netns, underlayLines(plan))
}

export async function createNode (plan: LabPlan, node: PlanNode): Promise<void> {
  await addNetns(node.netns)
  await addVethPair({ netns: node.netns, name: NODE_UPLINK }, { netns: plan.underlay.netns, name: node.underlayPeer })
  await ipBatch(plan.underlay.netns, underlayPortLines(plan, node))
  await ipBatch(node.netns, nodeLines(node))
  await setSysctls(netnsPath(plan.paths, node.netns), NODE_SYSCTLS)
}

export async function createPodNetwork (plan: LabPlan, pod: PlanPod): Promise<void> {
  const node = plan.nodes.find((n) => n.name === pod.node)
  if (node === undefined) throw new Error(`pod ${pod.namespace}/${pod.name}: no node ${pod.node} in the plan`)
  await addNetns(pod.netns)
  await addVethPair({ netns: pod.netns, name: POD_IFNAME }, { netns: node.netns, name: pod.hostVeth })
  await ipBatch(pod.netns, podLines(pod))
  await ipBatch(node.netns, nodeSideOfPodLines(pod, node))
}
