import type { InboundModeDecision } from '../discovery/mesh-policy'
import type { Pod } from '../discovery/model'
import type { Svid } from '../identity/svid'
import type { TunnelOpenRequest, TunnelStream } from '../tunnel'
import type { InboundAuthorizer } from './authorize'
import type { Connector } from './connect'

// What the proxy asks of the node it runs on, through one narrow interface the agent
// implements (src/worker/node-mesh.ts; tests build their own). Structural: a worker's
// SvidStore and the tunnel library's TunnelPool fit as they are.
//
// A handler built without a Mesh behaves as before the tunnel existed: every upstream is
// direct, nothing is authenticated, inbound plaintext is accepted.

/** Pods' SPIFFE IDs, and the certificate to present for one. */
export interface PodIdentities {
  spiffeIdOf (pod: Pod): string
  /** The SVID to present now, or null (none yet). */
  svidFor (spiffeId: string): Svid | null
}

/** Opens CONNECT streams to peer nodes (a TunnelPool). */
export interface TunnelOpener {
  open (req: TunnelOpenRequest): Promise<TunnelStream>
}

/** A pod enrolled on this node, and how to make a socket inside its netns. */
export interface LocalPod {
  readonly pod: Pod
  readonly connector: Connector
  /** Cookie of the pod's netns (the splice names the pod's sockets by it); absent in tests without one. */
  readonly netnsCookie?: bigint
}

export interface Mesh {
  /** This node's name (pods with this spec.nodeName are local). */
  readonly node: string
  /** Null when the agent has no CA: plaintext mesh, no tunnel, every pod PERMISSIVE. */
  readonly identities: PodIdentities | null
  /** Null exactly when identities is. */
  readonly tunnels: TunnelOpener | null
  /** The port peer nodes' tunnel servers listen on (PORTS.tunnel). */
  readonly tunnelPort: number
  /** The pod enrolled on this node that owns `address` (canonical IP), or null. */
  localPod (address: string): LocalPod | null
  /** Whether plaintext from outside the mesh may reach `pod` (on `port`: PeerAuthentication's portLevelMtls). */
  inboundMode (pod: Pod, port?: number): InboundModeDecision
  /** The authorize stage's policies and live connections. Absent: every connection is allowed. */
  readonly authz?: InboundAuthorizer
}
