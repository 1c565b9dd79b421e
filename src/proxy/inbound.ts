import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { trace } from '../telemetry/trace'
import { accepted, finish, opened, reject } from './account'
import { admitPlaintext } from './admit'
import { resetEnds } from './authorize'
import { Conn } from './conn'
import { connectUpstream } from './connect'
import { PROXY_DEFAULTS } from './defaults'
import { identifyInbound } from './identify'
import { originalDstInbound } from './original-dst'
import { relay } from './relay'
import type { PodListenerDeps } from './listener-deps'
import { routeInbound } from './route'

// A plaintext inbound connection, steered by sk_lookup onto a pod's 15006 listener:
//   identify (peer IP → source pod; the listener's pod is the destination) → original dst
//   (the accepted socket's local address) → admit (the pod's inbound mode: STRICT resets
//   it, result denied_plaintext) → authorize (the pod's policies, for a source without a
//   principal: result denied, reset) → route (that same address) → connect (from inside
//   the destination pod's netns, over lo, so sk_lookup does not steer it again) → relay
//   (tracked, so a new policy that denies it closes it) → account. (Connections from the mesh arrive through the tunnel: tunnel-inbound.ts.)
// A connection made to the listener's own address (from inside the pod's netns, not
// steered) has no original destination: reset as no_original_dst, never relayed to itself.

const TRACE = trace('proxy')

/** `pod` is the destination; the connector makes sockets inside its netns. */
export type InboundDeps = PodListenerDeps

export function createInboundHandler (deps: InboundDeps): (socket: Socket) => void {
  const clock = deps.clock ?? (() => performance.now())
  const timeoutMs = deps.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs
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
    if (authz !== undefined && !authz.authorize(conn, pod)) {
      if (TRACE.on) TRACE('inbound denied', { pod: deps.pod.name, src: conn.source.ip, dst: conn.originalDst })
      reject(conn, telemetry, 'denied', null)
      return
    }
    if (TRACE.on) TRACE('inbound', { pod: deps.pod.name, src: conn.source.ip, dst: conn.originalDst })
    connectUpstream(conn, target, deps.connector, timeoutMs,
      (upstream) => {
        conn.upstream = upstream
        const untrack = authz?.track(conn, pod, null, () => { finish(conn, telemetry, 'denied', null); resetEnds(socket, upstream) })
        relay(socket, upstream, (code) => { untrack?.(); finish(conn, telemetry, code === null ? 'ok' : 'reset', code) })
      },
      (result, code) => { reject(conn, telemetry, result, code) })
  }
}
