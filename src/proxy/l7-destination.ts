import type { Pod } from '../discovery/model'
import type { DeclaredVersion, HttpDownstream, RequestAuthorizer, UpstreamTarget } from '../http/context'
import { passClientEnd, sniff } from '../http/sniff'
import type { RequestRateLimit } from '../limits/types'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { SocketAddr } from '../telemetry/connection-record'
import { finish } from './account'
import type { InboundAuthorizer } from './authorize'
import { type Conn, errorCodeOf } from './conn'
import type { Connector } from './connect'
import type { L7Deps } from './l7-deps'
import { dialSocket } from './l7-dial'
import { versionOf } from './l7-source'
import type { RelayEnd } from './relay'

// The destination node's L7 handling of an inbound connection (plaintext listener,
// tunnel stream, or the same-node path's destination part: local-l7.ts) to a pod port where L7 is engaged (L7Table.forWorkload, with the L7
// policy that selects the pod there): the HTTP engine takes the connection, normalizes
// each request's path, authorizes each request with the pod's policies (denied: 403 /
// PERMISSION_DENIED, the connection stays up) and forwards it to the pod over pooled
// connections made inside its netns. The connection-level authorization is not applied
// here: every request is decided on its own.
// A detected port's connection whose bytes are not HTTP stays L4, authorized as a
// connection: where an L7 policy applies, an L7 ALLOW rule cannot match it and an L7
// DENY rule applies without its L7 conditions; denied, it is reset (counted `not_http`
// when an L7 policy selects the port).

export interface DestinationL7 {
  readonly l7: L7Deps
  readonly telemetry: ConnTelemetry
  readonly timeoutMs: number
  readonly authz: InboundAuthorizer | undefined
}

export interface DestinationPlan {
  /** Null: detect from the client's first bytes. */
  readonly version: DeclaredVersion | null
  /** The L7 policy that selects the pod on this port, or null. */
  readonly policy: string | null
}

/** Whether L7 is engaged for `pod` on `port`, and how; null: L4. */
export function planDestination (l7: L7Deps | undefined, authz: InboundAuthorizer | undefined, pod: Pod, port: number): DestinationPlan | null {
  if (l7 === undefined) return null
  const policy = authz?.l7PolicyFor(pod, port) ?? null
  const d = l7.table().forWorkload(pod, port, policy)
  if (!d.engaged || d.protocol === 'tcp') return null
  return { version: versionOf(d.protocol), policy }
}

class DestinationDownstream implements HttpDownstream {
  readonly reporter = 'destination' as const
  readonly authorizer: RequestAuthorizer
  readonly normalizePath: HttpDownstream['normalizePath']
  readonly route = null
  /** The pod's bucket, shared by every worker of the node (one per pod, never per worker or per source). */
  readonly rateLimit: RequestRateLimit | null
  private readonly target: UpstreamTarget

  constructor (readonly record: Conn, pod: Pod, address: SocketAddr, connector: Connector, ipNamespace: string | null, d: DestinationL7) {
    const authz = d.authz
    this.authorizer = { record, authorize: authz === undefined ? () => true : (view) => authz.authorizeRequest(record, pod, view, ipNamespace), rateLimit: null }
    this.normalizePath = d.l7.normalizePath
    this.rateLimit = d.l7.rateLimitOf?.(pod) ?? null
    this.target = {
      key: `destination|${pod.uid}|${address.address}:${address.port}`,
      address,
      record,
      local: null,
      dial: async () => await dialSocket(connector, address, d.timeoutMs)
    }
  }

  pick (): UpstreamTarget { return this.target }
  first (): UpstreamTarget { return this.target }
}

/**
 * Serves `end` (the connection's downstream: the socket, or the accepted tunnel stream)
 * with the engine, forwarding to `address` in `pod`. Detect (`plan.version` null):
 * `upstream` is the connection already made to the pod; `relayL4` relays it when the
 * bytes are not HTTP and no L7 policy applies.
 */
export function serveDestination (conn: Conn, end: RelayEnd, pod: Pod, address: SocketAddr, connector: Connector, ipNamespace: string | null, plan: DestinationPlan, d: DestinationL7, upstream: RelayEnd | null, relayL4: (upstream: RelayEnd) => void): void {
  const ds = new DestinationDownstream(conn, pod, address, connector, ipNamespace, d)
  conn.downstream = end
  end.on('error', (err) => { if (conn.errorCode === null) conn.errorCode = errorCodeOf(err) })
  const ended = (): void => { finish(conn, d.telemetry, conn.errorCode === null ? 'ok' : 'reset', conn.errorCode) }
  end.once('close', ended)
  if (plan.version !== null || upstream === null) {
    upstream?.destroy()
    if (plan.version !== null) d.l7.engine.serveDeclared(end, plan.version, ds)
    else d.l7.engine.serve(end, 'http1', ds)
    return
  }
  sniff(end, upstream, d.l7.engine.deps.limits.maxHeaderBytes, (r) => {
    if (r.kind === 'l4') {
      d.l7.detected(r.reason)
      end.off('close', ended)
      // Not HTTP: decided as a connection (src/proxy/authorize.ts), which no request
      // decision covers — on a port an L7 policy selects, an L7 ALLOW rule cannot match
      // it and an L7 DENY rule applies without its L7 conditions (Istio's rule); the
      // pod's L4 rules apply as on any L4 connection.
      if (d.authz !== undefined && !d.authz.authorize(conn, pod, ipNamespace)) {
        if (plan.policy !== null) d.l7.engine.deps.refusals.refused('not_http')
        finish(conn, d.telemetry, 'denied', null)
        end.resetAndDestroy()
        upstream.resetAndDestroy()
        return
      }
      passClientEnd(r, upstream)
      relayL4(upstream)
      return
    }
    d.l7.detected(r.version)
    d.l7.engine.serve(r.end ?? end, r.version, ds, { target: ds.first(), end: r.up ?? upstream })
  })
}
