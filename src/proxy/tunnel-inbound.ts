import { familyOf } from '../discovery/ip'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { trace } from '../telemetry/trace'
import type { TunnelRequest } from '../tunnel'
import { accepted, finish, opened } from './account'
import { Conn } from './conn'
import { connectUpstream } from './connect'
import { type HandlerTimings, resolveTimings } from './defaults'
import { relayAndFinish } from './finish'
import { identifyMeshSource, workloadRef } from './identify'
import type { Mesh, PodIdentities } from './mesh'
import { routeInbound } from './route'
import type { Routes } from './route-table'
import type { L7Deps } from './l7-deps'
import { planDestination, serveDestination } from './l7-destination'
import type { RelayEnd } from './relay'

// A CONNECT stream from a peer node's proxy (the tunnel server's onStream): the peer's
// certificate is already verified; its principal is the source.
//   destination  the :authority must be a pod enrolled on this node    else 404
//                whose identity is the one this session presented (SNI) else 421
//   authorize    the pod's policies, for the verified peer principal     else 403
//   connect      from inside that pod's netns to the authority (over its lo, which
//                sk_lookup ignores), *before* answering              failure: 503
//   accept       200, then relay the stream and the socket, recheck on policy swaps,
//                account (finish.ts): one inbound line, source_principal = the verified
//                peer, mtls: true
// Refusals go back through the tunnel library (its onRefused hook logs and counts them)
// and never throw. The inbound mode does not apply: this is the mesh.

const TRACE = trace('proxy')

/** The statuses the agent refuses a CONNECT with (the library answers its own 4xx for malformed ones). */
export const TUNNEL_REFUSAL_STATUS = Object.freeze({
  /** The authority is not a pod enrolled on this node. */
  notHere: 404,
  /** The pod at the authority has another identity than the one the client asked this node for. */
  misdirected: 421,
  /** An AuthorizationPolicy of the pod denies the peer. */
  forbidden: 403,
  /** The pod did not accept the connection (refused, timed out). */
  unreachable: 503
})

export interface TunnelInboundDeps extends HandlerTimings {
  readonly routes: Routes
  readonly mesh: Mesh
  readonly identities: PodIdentities
  readonly telemetry: ConnTelemetry
  /** Where L7 applies, requests are handled one by one (l7-destination.ts); absent: all L4. */
  readonly l7?: L7Deps
}

export function createTunnelInboundHandler (deps: TunnelInboundDeps): (req: TunnelRequest) => void {
  const { clock, timeoutMs } = resolveTimings(deps)
  const { telemetry, mesh, identities, routes } = deps
  return (req) => {
    const local = mesh.localPod(req.authority.address)
    if (local === null) {
      req.refuse(TUNNEL_REFUSAL_STATUS.notHere, `${req.authorityText} is not a pod enrolled on node ${mesh.node}`)
      return
    }
    const destinationPrincipal = identities.spiffeIdOf(local.pod)
    if (destinationPrincipal !== req.localSpiffeId) {
      req.refuse(TUNNEL_REFUSAL_STATUS.misdirected, `${req.authorityText} is ${destinationPrincipal}, not ${req.localSpiffeId} (the identity this session presented)`)
      return
    }
    const conn = new Conn('inbound', null, clock)
    conn.mtls = true
    identifyMeshSource(conn, req.forwardedFor, 0, req.peerSpiffeId, routes.index, identities)
    const { address, port } = req.authority
    conn.originalDst = { address, port, family: familyOf(address) }
    const target = routeInbound(conn, routes)
    conn.destination = workloadRef(local.pod)
    conn.destinationPrincipal = destinationPrincipal
    accepted(conn, telemetry)
    opened(conn, telemetry)
    if (TRACE.on) TRACE('tunnel inbound', { peer: req.peerSpiffeId, authority: req.authorityText, from: req.remoteAddress })
    const authz = mesh.authz
    const plan = planDestination(deps.l7, authz, local.pod, port)
    if (plan !== null) {
      // L7 at the destination (l7-destination.ts): each request is authorized on its own.
      const l7 = { l7: deps.l7!, telemetry, timeoutMs, authz }
      const relayL4 = (stream: RelayEnd) => (upstream: RelayEnd): void => {
        relayAndFinish(stream, upstream, { telemetry, records: [conn], recheck: authz === undefined ? undefined : { authz, record: conn, pod: local.pod, ipNamespace: null } })
      }
      if (plan.version !== null) {
        const stream = req.accept()
        if (stream === null) { finish(conn, telemetry, 'reset', 'ECONNABORTED'); return }
        serveDestination(conn, stream, local.pod, target, local.connector, null, plan, l7, null, relayL4(stream))
        return
      }
      connectUpstream(conn, target, local.connector, timeoutMs,
        (upstream) => {
          const stream = req.accept()
          if (stream === null) { upstream.destroy(); finish(conn, telemetry, 'reset', 'ECONNABORTED'); return }
          serveDestination(conn, stream, local.pod, target, local.connector, null, plan, l7, upstream, relayL4(stream))
        },
        (result, code) => {
          req.refuse(TUNNEL_REFUSAL_STATUS.unreachable, `connect to ${req.authorityText} in pod ${local.pod.namespace}/${local.pod.name}: ${code}`)
          finish(conn, telemetry, result, code)
        },
        req.signal)
      return
    }
    if (authz !== undefined && !authz.authorize(conn, local.pod)) {
      if (TRACE.on) TRACE('tunnel inbound denied', { peer: req.peerSpiffeId, authority: req.authorityText })
      req.refuse(TUNNEL_REFUSAL_STATUS.forbidden, `${req.peerSpiffeId} may not connect to ${req.authorityText}: ${String(conn.authz?.policy ?? conn.authz?.basis)}`)
      finish(conn, telemetry, 'denied', null)
      return
    }
    if (req.signal.aborted) {
      finish(conn, telemetry, 'reset', 'ECONNABORTED')
      return
    }
    connectUpstream(conn, target, local.connector, timeoutMs,
      (upstream) => {
        const stream = req.accept()
        if (stream === null) {
          // The peer gave up between our connect and our answer.
          upstream.destroy()
          finish(conn, telemetry, 'reset', 'ECONNABORTED')
          return
        }
        relayAndFinish(stream, upstream, { telemetry, records: [conn], recheck: authz === undefined ? undefined : { authz, record: conn, pod: local.pod, ipNamespace: null } })
      },
      (result, code) => {
        req.refuse(TUNNEL_REFUSAL_STATUS.unreachable, `connect to ${req.authorityText} in pod ${local.pod.namespace}/${local.pod.name}: ${code}`)
        finish(conn, telemetry, result, code)
      },
      req.signal)
  }
}
