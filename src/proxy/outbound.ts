import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Pod } from '../discovery/model'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { trace } from '../telemetry/trace'
import { accepted, finish, opened, reject } from './account'
import { type Clock, Conn } from './conn'
import { type Connector, connectUpstream } from './connect'
import { PROXY_DEFAULTS } from './defaults'
import { identifyOutbound } from './identify'
import { type OriginalDstLookup, originalDstOutbound } from './original-dst'
import { relay } from './relay'
import { routeOutbound } from './route'
import type { Routes } from './route-table'

// An outbound connection, accepted on a pod's 15001 listener:
//   identify (the listener's pod) → original dst (eBPF record) → route (VIP → endpoint,
//   else pass through) → connect (from inside the source pod's netns) → relay → account.

const TRACE = trace('proxy')

export interface OutboundDeps {
  /** The pod whose outbound listener this is. */
  readonly pod: Pod
  /** Bound to the pod's netns cookie. */
  readonly originalDst: OriginalDstLookup
  readonly routes: Routes
  /** Creates upstream sockets inside the pod's netns. */
  readonly connector: Connector
  readonly telemetry: ConnTelemetry
  readonly connectTimeoutMs?: number
  readonly clock?: Clock
}

export function createOutboundHandler (deps: OutboundDeps): (socket: Socket) => void {
  const clock = deps.clock ?? (() => performance.now())
  const timeoutMs = deps.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs
  const { telemetry } = deps
  return (socket) => {
    const conn = new Conn('outbound', socket, clock)
    accepted(conn, telemetry)
    identifyOutbound(conn, deps.pod)
    if (!originalDstOutbound(conn, deps.originalDst)) {
      reject(conn, telemetry, 'no_original_dst', null)
      return
    }
    const target = routeOutbound(conn, deps.routes)
    opened(conn, telemetry)
    if (TRACE.on) TRACE('outbound', { pod: deps.pod.name, srcPort: conn.source.port, dst: conn.originalDst, service: conn.service, endpoint: conn.endpoint })
    if (target === null) {
      reject(conn, telemetry, 'no_endpoints', null)
      return
    }
    connectUpstream(conn, target, deps.connector, timeoutMs,
      (upstream) => { relay(socket, upstream, (code) => { finish(conn, telemetry, code === null ? 'ok' : 'reset', code) }) },
      (result, code) => { reject(conn, telemetry, result, code) })
  }
}
