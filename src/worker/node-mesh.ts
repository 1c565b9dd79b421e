import { inboundMode, type InboundModeDecision } from '../discovery/mesh-policy'
import type { Pod } from '../discovery/model'
import type { InboundAuthorizer } from '../proxy/authorize'
import type { LocalPod, Mesh, PodIdentities, TunnelOpener } from '../proxy/mesh'
import type { RouteTable } from '../proxy/route-table'
import type { Logger } from '../telemetry/logger'

// The proxy's view of this node (src/proxy/mesh.ts), built from a worker's parts:
// which pods are enrolled here (and a connector into each one's netns), the identities
// and the tunnel pool (both null without a CA), and each pod's inbound mode from the
// current snapshot and PeerAuthentication (src/discovery/mesh-policy.ts decides; without a CA every pod is
// PERMISSIVE, as before the tunnel existed).

const NO_CA_MODE: InboundModeDecision = Object.freeze({ mode: 'PERMISSIVE', scope: 'default' })
/** Distinct invalid inbound-mode values reported, at most (each once). */
const MAX_REPORTED = 1000

export interface NodeMeshDeps {
  readonly node: string
  readonly identity: PodIdentities | null
  readonly tunnels: TunnelOpener | null
  /** Peers' tunnel port (PORTS.tunnel; tests run peers on other ports). */
  readonly tunnelPort: number
  readonly routes: RouteTable
  /** The enrolled pod owning an IP, as the worker serves it. */
  readonly enrolledByIP: (ip: string) => LocalPod | undefined
  readonly log: Logger
  /** Policies (AuthorizationPolicy, PeerAuthentication) in force; absent: none. */
  readonly authz?: InboundAuthorizer
}

export function createNodeMesh (d: NodeMeshDeps): Mesh {
  const reported = new Set<string>()
  return {
    node: d.node,
    identities: d.identity,
    tunnels: d.identity === null ? null : d.tunnels,
    tunnelPort: d.tunnelPort,
    localPod (address: string): LocalPod | null {
      const e = d.enrolledByIP(address)
      if (e === undefined) return null
      // The snapshot may have moved on since enrollment (labels, service account).
      const current = d.routes.index.podByIP(address)
      return current?.uid === e.pod.uid ? { ...e, pod: current } : e
    },
    authz: d.authz,
    inboundMode (pod: Pod, port?: number): InboundModeDecision {
      if (d.identity === null) return NO_CA_MODE
      const peer = d.authz?.current()?.mtls.modeFor(pod, port) ?? null
      const decision = inboundMode(pod, d.routes.index.namespace(pod.namespace), peer)
      if (decision.invalid !== undefined && !reported.has(decision.invalid) && reported.size < MAX_REPORTED) {
        reported.add(decision.invalid)
        d.log.warn({ pod: `${pod.namespace}/${pod.name}`, code: 'FERRY_ERR_CONFIG', err: decision.invalid }, 'invalid inbound mode; the pod is STRICT')
      }
      return decision
    }
  }
}
