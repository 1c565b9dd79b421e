import type { Socket } from 'node:net'
import type { Pod } from '../discovery/model'
import { podIPOfFamily } from '../discovery/model'
import { canonicalIP } from '../discovery/ip'
import type { WorkloadRef } from '../telemetry/connection-record'
import { type Conn, familyOfSocket } from './conn'
import type { PodIdentities } from './mesh'

// Identify stage: who is on the other end.
// Outbound: the listener belongs to one pod, so the source is that pod (its IP of the
// connection's family; the port is the application's own source port).
// Inbound (plaintext): the source is whoever owns the peer IP (a pod, or unknown) —
// never a principal: nothing proved it. The destination is the pod whose listener accepted.
// Inbound from the mesh (tunnel, same-node): the source principal is proven (mTLS) or
// known (a pod of this node); the source address is informational.

export interface PodLookup {
  podByIP (address: string): Pod | undefined
}

export function workloadRef (pod: Pod): WorkloadRef {
  return { pod: pod.name, namespace: pod.namespace, workload: pod.workload }
}

export function identifyOutbound (conn: Conn, socket: Socket, self: Pod, identities: PodIdentities | null): void {
  const s = conn.source
  s.pod = self.name
  s.namespace = self.namespace
  s.workload = self.workload
  s.ip = podIPOfFamily(self, familyOfSocket(socket)) ?? self.podIPs[0] ?? ''
  s.port = socket.remotePort ?? 0
  if (identities !== null) conn.sourcePrincipal = identities.spiffeIdOf(self)
}

export function identifyInbound (conn: Conn, socket: Socket, self: Pod, pods: PodLookup, identities: PodIdentities | null): void {
  const s = conn.source
  const ip = canonicalIP(socket.remoteAddress ?? '') ?? ''
  s.ip = ip
  s.port = socket.remotePort ?? 0
  const peer = pods.podByIP(ip)
  if (peer !== undefined) setSourcePod(conn, peer)
  conn.destination = workloadRef(self)
  if (identities !== null) conn.destinationPrincipal = identities.spiffeIdOf(self)
}

/**
 * The source of a connection delivered by the mesh: `principal` is proven, `address` is
 * only what the peer node says. When `address` belongs to a pod of another identity the
 * claim contradicts the proof, so the address is dropped (empty): a compromised node
 * cannot borrow another workload's IP to match an ipBlocks rule. An address of a pod with
 * this principal names that pod; an address of no known pod is kept as said.
 */
export function identifyMeshSource (conn: Conn, address: string | null, port: number, principal: string, pods: PodLookup, identities: PodIdentities): void {
  const s = conn.source
  const ip = address === null ? null : canonicalIP(address)
  const peer = ip === null ? undefined : pods.podByIP(ip)
  const contradicts = peer !== undefined && identities.spiffeIdOf(peer) !== principal
  s.ip = ip === null || contradicts ? '' : ip
  s.port = port
  conn.sourcePrincipal = principal
  if (peer !== undefined && !contradicts) setSourcePod(conn, peer)
}

function setSourcePod (conn: Conn, pod: Pod): void {
  conn.source.pod = pod.name
  conn.source.namespace = pod.namespace
  conn.source.workload = pod.workload
}
