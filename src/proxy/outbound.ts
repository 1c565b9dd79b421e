import type { Socket } from 'node:net'
import { passClientEnd, type SniffResult } from '../http/sniff'
import { trace } from '../telemetry/trace'
import { accepted, opened, reject } from './account'
import { Conn } from './conn'
import { connectUpstream } from './connect'
import { resolveTimings } from './defaults'
import { relayAndFinish } from './finish'
import { identifyOutbound } from './identify'
import type { PodListenerDeps } from './listener-deps'
import { type OriginalDstLookup, originalDstOutbound } from './original-dst'
import { choosePath } from './path'
import type { RelayEnd } from './relay'
import { routeOutbound } from './route'
import { deliverLocally } from './same-node'
import type { Splicer } from './splice'
import { openTunnel } from './tunnel-connect'
import { type DetectedL4, serveSource, versionOf } from './l7-source'
import { planDestination } from './l7-destination'
import { localDetectL4, serveLocalDestination } from './local-l7'

// An outbound connection, accepted on a pod's 15001 listener:
//   identify (the listener's pod) → original dst (eBPF record) → route (VIP → endpoint,
//   else pass through) → path (local pod / peer node's tunnel / direct) → connect (from
//   inside the destination pod's netns; a CONNECT stream through the tunnel pool; or from
//   inside the source pod's netns) → relay and account (finish.ts).
// Where L7 applies: at the source on a Service port (l7-source.ts), at the destination
// for a pod of this node (local-l7.ts), whatever address was dialed; the cross-node
// destination is the peer's (tunnel-inbound.ts).

const TRACE = trace('proxy')

export interface OutboundDeps extends PodListenerDeps {
  /** Bound to the pod's netns cookie. */
  readonly originalDst: OriginalDstLookup
  /** Splices same-node connections app to app; absent: all by TCP. */
  readonly splicer?: Splicer
}

export function createOutboundHandler (deps: OutboundDeps): (socket: Socket) => void {
  const { clock, timeoutMs } = resolveTimings(deps)
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
    // Outlier detection on the Service (a DestinationRule): the connect's outcome is reported; else null.
    const outcome = conn.service === null ? null : deps.routes.connectOutcome?.(conn.originalDst!.address, conn.originalDst!.port, `${target.address}|${target.port}`) ?? null
    opened(conn, telemetry)
    if (TRACE.on) TRACE('outbound', { pod: deps.pod.name, srcPort: conn.source.port, dst: conn.originalDst, service: conn.service, endpoint: conn.endpoint, path: path.kind })
    const relayed = (upstream: RelayEnd, sniffed?: SniffResult): void => {
      if (sniffed !== undefined) passClientEnd(sniffed, upstream)
      relayAndFinish(socket, upstream, { telemetry, records: [conn] })
    }
    const l7 = deps.l7
    if (l7 !== undefined && conn.service !== null) {
      // L7 at the source: a Service port where it is engaged.
      const dst = conn.originalDst!
      const entry = deps.routes.index.lookup(dst.address, dst.port)
      const decision = entry === undefined ? null : l7.table().forService(entry.service, entry.port)
      if (entry !== undefined && decision !== null && decision.engaged && decision.protocol !== 'tcp') {
        const version = versionOf(decision.protocol)
        let relayL4: DetectedL4 = relayed
        if (version === null && path.kind === 'local') {
          // Detect, starting on a pod of this node: the destination's part (local-l7.ts).
          const local = localDetectL4(conn, path.local, { l7, telemetry, timeoutMs, clock, authz: mesh?.authz })
          if (local === null) return
          relayL4 = local
        }
        const first = entry.endpoints.find((e) => e.address === target.address && e.port === target.port) ?? null
        serveSource(conn, socket, entry, version, { l7, routes: deps.routes, mesh, connector: deps.connector, telemetry, timeoutMs, clock }, first, relayL4)
        return
      }
    }
    switch (path.kind) {
      case 'local': {
        // L7 at the destination, decided here for the pod of this node (local-l7.ts);
        // otherwise L4, spliced.
        const authz = mesh?.authz
        const plan = planDestination(l7, authz, path.local.pod, target.port)
        if (plan !== null) {
          serveLocalDestination(conn, socket, path.local, plan, { l7: l7!, telemetry, timeoutMs, clock, authz })
          return
        }
        deliverLocally(conn, socket, path.local, { telemetry, timeoutMs, clock, authz, splicer: deps.splicer, ...(outcome === null ? {} : { outcome }) })
        return
      }
      case 'tunnel':
        openTunnel(conn, path, mesh!.tunnels!, identities!,
          outcome === null ? relayed : (stream) => { outcome('connected'); relayed(stream) },
          (result, code, reason) => {
            // Not the endpoint's doing: the source left, or this node has no certificate for it.
            if (outcome !== null && result !== 'reset' && reason !== 'no-certificate') outcome('failed')
            reject(conn, telemetry, result, code, reason)
          })
        return
      case 'direct':
        connectUpstream(conn, target, deps.connector, timeoutMs,
          outcome === null ? relayed : (upstream) => { outcome('connected'); relayed(upstream) },
          (result, code) => {
            if (outcome !== null && result !== 'reset') outcome('failed')
            reject(conn, telemetry, result, code)
          })
    }
  }
}
