import type { Pod } from '../discovery/model'
import { podIPOfFamily } from '../discovery/model'
import { canonicalIP } from '../discovery/ip'
import type { WorkloadRef } from '../telemetry/connection-record'
import { type Conn, familyOfSocket } from './conn'

// Identify stage: who is on the other end of the accepted socket.
// Outbound: the listener belongs to one pod, so the source is that pod (its IP of the
// connection's family; the port is the application's own source port).
// Inbound: the source is whoever owns the peer IP (a pod, or unknown); the destination
// is the pod whose listener accepted.

export interface PodLookup {
  podByIP (address: string): Pod | undefined
}

export function workloadRef (pod: Pod): WorkloadRef {
  return { pod: pod.name, namespace: pod.namespace, workload: pod.workload }
}

export function identifyOutbound (conn: Conn, self: Pod): void {
  const s = conn.source
  s.pod = self.name
  s.namespace = self.namespace
  s.workload = self.workload
  s.ip = podIPOfFamily(self, familyOfSocket(conn.downstream)) ?? self.podIPs[0] ?? ''
  s.port = conn.downstream.remotePort ?? 0
}

export function identifyInbound (conn: Conn, self: Pod, pods: PodLookup): void {
  const s = conn.source
  const ip = canonicalIP(conn.downstream.remoteAddress ?? '') ?? ''
  s.ip = ip
  s.port = conn.downstream.remotePort ?? 0
  const peer = pods.podByIP(ip)
  if (peer !== undefined) {
    s.pod = peer.name
    s.namespace = peer.namespace
    s.workload = peer.workload
  }
  conn.destination = workloadRef(self)
}
