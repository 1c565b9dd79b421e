import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { trace } from '../telemetry/trace'
import { accepted, finish, opened, reject } from './account'
import { Conn } from './conn'
import { connectUpstream } from './connect'
import { PROXY_DEFAULTS } from './defaults'
import { identifyOutbound } from './identify'
import type { PodListenerDeps } from './listener-deps'
import { type OriginalDstLookup, originalDstOutbound } from './original-dst'
import { choosePath } from './path'
import { relay, type RelayEnd } from './relay'
import { routeOutbound } from './route'
import { deliverLocally } from './same-node'
import type { Shortcuts } from './shortcuts'
import { openTunnel } from './tunnel-connect'

// An outbound connection, accepted on a pod's 15001 listener:
//   identify (the listener's pod) → original dst (eBPF record) → route (VIP → endpoint,
//   else pass through) → path (local pod / peer node's tunnel / direct) → connect (from
//   inside the destination pod's netns; a CONNECT stream through the tunnel pool; or from
//   inside the source pod's netns) → relay → account.

const TRACE = trace('proxy')

export interface OutboundDeps extends PodListenerDeps {
  /** Bound to the pod's netns cookie. */
  readonly originalDst: OriginalDstLookup
  /** Kernel shortcuts of the plaintext hops; absent: all by TCP. */
  readonly shortcuts?: Shortcuts
}

export function createOutboundHandler (deps: OutboundDeps): (socket: Socket) => void {
  const clock = deps.clock ?? (() => performance.now())
  const timeoutMs = deps.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs
  const { telemetry, mesh } = deps
  const identities = mesh?.identities ?? null
  return (socket) => {
    const conn = new Conn('outbound', socket, clock)
    accepted(conn, telemetry)
    identifyOutbound(conn, socket, deps.pod, identities)
    if (!originalDstOutbound(conn, socket, deps.originalDst)) {
      reject(conn, telemetry, 'no_original_dst', null)
      return
    }
    const target = routeOutbound(conn, deps.routes)
    if (target === null) {
      opened(conn, telemetry)
      reject(conn, telemetry, 'no_endpoints', null)
      return
    }
    const path = choosePath(conn, mesh, deps.routes)
    opened(conn, telemetry)
    if (TRACE.on) TRACE('outbound', { pod: deps.pod.name, srcPort: conn.source.port, dst: conn.originalDst, service: conn.service, endpoint: conn.endpoint, path: path.kind })
    const relayed = (upstream: RelayEnd): void => {
      conn.upstream = upstream
      relay(socket, upstream, (code) => { finish(conn, telemetry, code === null ? 'ok' : 'reset', code) })
    }
    // Every path but the same-node one (spliced app to app instead) takes the hop shortcut.
    if (path.kind !== 'local') deps.shortcuts?.join(socket)
    switch (path.kind) {
      case 'local':
        deliverLocally(conn, socket, path.local, telemetry, timeoutMs, clock, mesh?.authz, deps.shortcuts)
        return
      case 'tunnel':
        openTunnel(conn, path, mesh!.tunnels!, identities!, relayed, (result, code, reason) => { reject(conn, telemetry, result, code, reason) })
        return
      case 'direct':
        connectUpstream(conn, target, deps.connector, timeoutMs, relayed, (result, code) => { reject(conn, telemetry, result, code) })
    }
  }
}
