import type { Socket } from 'node:net'
import { trace } from '../telemetry/trace'
import { accepted, opened, reject } from './account'
import { admitPlaintext } from './admit'
import { Conn } from './conn'
import { connectUpstream } from './connect'
import { resolveTimings } from './defaults'
import { relayAndFinish } from './finish'
import { identifyInbound } from './identify'
import { originalDstInbound } from './original-dst'
import type { PodListenerDeps } from './listener-deps'
import type { RelayEnd } from './relay'
import { routeInbound } from './route'
import { planDestination, serveDestination } from './l7-destination'

// A plaintext inbound connection, steered by sk_lookup onto a pod's 15006 listener:
//   identify (peer IP → source pod; the listener's pod is the destination) → original dst
//   (the accepted socket's local address) → admit (the pod's inbound mode: STRICT resets
//   it, result denied_plaintext) → authorize (the pod's policies, for a source without a
//   principal: result denied, reset) → route (that same address) → connect (from inside
//   the destination pod's netns, over lo, so sk_lookup does not steer it again) → relay,
//   recheck on policy swaps and account (finish.ts). (Connections from the mesh arrive
//   through the tunnel: tunnel-inbound.ts.)
// A connection made to the listener's own address (from inside the pod's netns, not
// steered) has no original destination: reset as no_original_dst, never relayed to itself.

const TRACE = trace('proxy')

/** `pod` is the destination; the connector makes sockets inside its netns. */
export type InboundDeps = PodListenerDeps

export function createInboundHandler (deps: InboundDeps): (socket: Socket) => void {
  const { clock, timeoutMs } = resolveTimings(deps)
  const { telemetry, mesh } = deps
  const identities = mesh?.identities ?? null
  return (socket) => {
    const conn = new Conn('inbound', socket, clock)
    accepted(conn, telemetry)
    identifyInbound(conn, socket, deps.pod, deps.routes.index, identities)
    if (!originalDstInbound(conn, socket, deps.ownAddresses)) {
      reject(conn, telemetry, 'no_original_dst', null)
      return
    }
    const target = routeInbound(conn, deps.routes)
    opened(conn, telemetry)
    if (!admitPlaintext(conn, deps.pod, deps.routes.index, mesh)) {
      if (TRACE.on) TRACE('inbound plaintext denied', { pod: deps.pod.name, src: conn.source.ip, dst: conn.originalDst })
      reject(conn, telemetry, 'denied_plaintext', null)
      return
    }
    const authz = mesh?.authz
    const pod = (conn.originalDst === null ? null : mesh?.localPod(conn.originalDst.address)?.pod) ?? deps.pod
    const plan = planDestination(deps.l7, authz, pod, target.port)
    if (plan !== null) {
      // L7 at the destination (l7-destination.ts): each request is authorized on its own.
      const l7 = { l7: deps.l7!, telemetry, timeoutMs, authz }
      const relayL4 = (upstream: RelayEnd): void => { relayAndFinish(socket, upstream, { telemetry, records: [conn], recheck: authz === undefined ? undefined : { authz, record: conn, pod, ipNamespace: null } }) }
      if (plan.version !== null) {
        serveDestination(conn, socket, pod, target, deps.connector, null, plan, l7, null, relayL4)
        return
      }
      connectUpstream(conn, target, deps.connector, timeoutMs,
        (upstream) => { serveDestination(conn, socket, pod, target, deps.connector, null, plan, l7, upstream, relayL4) },
        (result, code) => { reject(conn, telemetry, result, code) })
      return
    }
    if (authz !== undefined && !authz.authorize(conn, pod)) {
      if (TRACE.on) TRACE('inbound denied', { pod: deps.pod.name, src: conn.source.ip, dst: conn.originalDst })
      reject(conn, telemetry, 'denied', null)
      return
    }
    if (TRACE.on) TRACE('inbound', { pod: deps.pod.name, src: conn.source.ip, dst: conn.originalDst })
    connectUpstream(conn, target, deps.connector, timeoutMs,
      (upstream) => {
        relayAndFinish(socket, upstream, { telemetry, records: [conn], recheck: authz === undefined ? undefined : { authz, record: conn, pod, ipNamespace: null } })
      },
      (result, code) => { reject(conn, telemetry, result, code) })
  }
}
