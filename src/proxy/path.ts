import { isMeshed } from '../discovery/mesh-policy'
import type { Pod } from '../discovery/model'
import type { Conn } from './conn'
import type { LocalPod, Mesh } from './mesh'
import type { Routes } from './route-table'

// Path stage (outbound, after route): how to reach the chosen endpoint.
//
//   local   the endpoint is a pod enrolled on this node: no network hop — connect from
//           inside the destination pod's netns, as the inbound side does. Both identities
//           are known (this node holds both); no TLS is needed on the node.
//   tunnel  the endpoint is a meshed pod on another node: a CONNECT stream through the
//           pool to <its node's IP>:15008, presenting the source pod's SVID and expecting
//           the destination pod's SPIFFE ID (what discovery says it is).
//   direct  anything else (not a pod, not meshed, a local pod not enrolled, a pod whose
//           node has no known IP) — or no CA: connect from inside the source pod's netns,
//           in plaintext, as before the tunnel existed.
//
// Sets the connection's principals and `mtls` (labels are final after this stage).

export type UpstreamPath =
  | { readonly kind: 'direct' }
  | { readonly kind: 'local', readonly local: LocalPod }
  | { readonly kind: 'tunnel', readonly node: { readonly address: string, readonly port: number }, readonly expected: string }

const DIRECT: UpstreamPath = Object.freeze({ kind: 'direct' })

export function choosePath (conn: Conn, mesh: Mesh | undefined, routes: Routes): UpstreamPath {
  const endpoint = conn.endpoint
  if (endpoint === null) return DIRECT
  const p = pathTo(endpoint.address, mesh, routes)
  if (p.destinationPrincipal !== null) conn.destinationPrincipal = p.destinationPrincipal
  if (p.path.kind === 'tunnel') conn.mtls = true
  return p.path
}

/** The path to one endpoint address and the destination principal it implies (null: unknown); no side effects (L7 asks per request). */
export function pathTo (address: string, mesh: Mesh | undefined, routes: Routes): { readonly path: UpstreamPath, readonly destinationPrincipal: string | null } {
  const identities = mesh?.identities ?? null
  if (mesh === undefined || identities === null) return { path: DIRECT, destinationPrincipal: null }
  const local = mesh.localPod(address)
  if (local !== null) return { path: { kind: 'local', local }, destinationPrincipal: identities.spiffeIdOf(local.pod) }
  const pod = routes.index.podByIP(address)
  if (pod === undefined || pod.nodeName === null || pod.nodeName === mesh.node) return { path: DIRECT, destinationPrincipal: null }
  if (!isMeshed(pod, routes.index.namespace(pod.namespace))) return { path: DIRECT, destinationPrincipal: null }
  const nodeAddress = tunnelAddressOf(pod)
  if (nodeAddress === null || mesh.tunnels === null) return { path: DIRECT, destinationPrincipal: null }
  const expected = identities.spiffeIdOf(pod)
  return { path: { kind: 'tunnel', node: { address: nodeAddress, port: mesh.tunnelPort }, expected }, destinationPrincipal: expected }
}

/** The address of the node a pod runs on, where its node's tunnel listens: the primary host IP. */
function tunnelAddressOf (pod: Pod): string | null {
  return pod.hostIPs[0] ?? null
}
