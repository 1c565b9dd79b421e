import type { Pod } from '../discovery/model'
import type { Conn } from './conn'
import type { Mesh } from './mesh'
import type { PodLookup } from './identify'

// Admission stage of the plaintext inbound path (a SYN that sk_lookup steered onto the
// pod's 15006 listener). Everything the mesh itself delivers to a pod arrives another
// way — through the tunnel, or from inside the pod's own netns for same-node traffic —
// so a connection here comes from outside the mesh (a process on a node, a pod that is
// not meshed, a meshed pod's excluded port). The pod's inbound mode decides:
//   STRICT      refused: the caller resets it (result denied_plaintext)
//   PERMISSIVE  relayed as before
// Without a mesh (or a CA) every pod is PERMISSIVE. The pod is read from the current
// snapshot, so a changed annotation or label applies to the next connection.

export function admitPlaintext (conn: Conn, self: Pod, pods: PodLookup, mesh: Mesh | undefined): boolean {
  if (mesh === undefined) return true
  const dst = conn.originalDst
  const current = dst === null ? undefined : pods.podByIP(dst.address)
  return mesh.inboundMode(current?.uid === self.uid ? current : self, dst?.port).mode === 'PERMISSIVE'
}
