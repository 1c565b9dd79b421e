import type { Socket } from 'node:net'
import type { Pod } from '../discovery/model'
import type { Endpoint, ServicePortEntry } from '../discovery/service-index'
import type { DeclaredVersion, HttpDownstream, NormalizePath, RequestAuthorizer, UpstreamTarget } from '../http/context'
import { sniff, type SniffResult } from '../http/sniff'
import type { L7Protocol } from '../l7/decision'
import type { RequestRateLimit } from '../limits/types'
import type { RelayEnd } from './relay'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { finish } from './account'
import type { InboundAuthorizer } from './authorize'
import { type Clock, Conn } from './conn'
import { workloadRef } from './identify'
import type { L7Deps } from './l7-deps'
import { dialSocket } from './l7-dial'
import type { Connector } from './connect'
import type { Mesh } from './mesh'
import { pathTo } from './path'
import { destinationRecord } from './same-node'
import type { Routes } from './route-table'

// The source node's L7 handling of an outbound connection to a Service port where L7 is
// engaged (L7Table.forService): the application's socket goes to the HTTP engine, which
// picks an endpoint per request (the Service's balancer, read per request) and forwards
// over pooled upstream connections. Each endpoint is reached by the path L4 would take:
//   direct  a socket from inside the source pod's netns
//   tunnel  a CONNECT stream through the tunnel pool, presenting the source pod's SVID
//   local   a socket from inside the destination pod's netns, and the destination's own
//           handling in this process (no second proxy sees the request): each request
//           authorized with the destination pod's policies and reported as the
//           destination too
// Pools are keyed by the source's identity and the endpoint: a pooled tunnel stream
// carries the source's SVID, so connections are never shared across source pods.
// The connection's own record (`conn`, its access line) ends when the socket closes.

export interface SourceL7 {
  readonly l7: L7Deps
  readonly routes: Routes
  readonly mesh: Mesh | undefined
  readonly connector: Connector
  readonly telemetry: ConnTelemetry
  readonly timeoutMs: number
  readonly clock: Clock
}

/**
 * The version a declared L7 port's upstream speaks, on every hop (the source sends the
 * port's version through the tunnel, which is what the destination's engine expects
 * there); null: detect. The client may speak the other version on http1 / http2 ports
 * (engine.ts serveDeclared translates).
 */
export function versionOf (protocol: L7Protocol): DeclaredVersion | null {
  switch (protocol) {
    case 'http1': return 'http1'
    case 'http2': return 'http2'
    case 'grpc': return 'grpc'
    default: return null
  }
}

class SourceDownstream implements HttpDownstream {
  readonly reporter = 'source' as const
  readonly authorizer = null
  readonly rateLimit = null
  /** The Service port's routing (src/routing/router.ts), null where it has none. */
  readonly route: HttpDownstream['route']
  /**
   * The destination's normalization, here too: on the same-node path the destination
   * pod's policies decide in this process, and must match the path the application
   * receives (//admin is /admin to a /admin* DENY). Elsewhere the destination's proxy
   * normalizes again, to the same path (normalization is idempotent).
   */
  readonly normalizePath: NormalizePath | null
  private readonly targets = new Map<string, UpstreamTarget>()
  private readonly identity: string

  /** The endpoint the connection was routed to (L4's pick): the first request goes there. */
  private firstEndpoint: Endpoint | null

  constructor (readonly record: Conn, private readonly entry: ServicePortEntry, private readonly s: SourceL7, first: Endpoint | null) {
    this.normalizePath = s.l7.normalizePath
    this.firstEndpoint = first
    this.identity = record.sourcePrincipal ?? `${record.source.namespace ?? ''}/${record.source.pod ?? ''}`
    const ns = record.source.namespace ?? ''
    const caller = { namespace: ns, labels: record.source.pod === null ? {} : s.routes.index.podByName(ns, record.source.pod)?.labels ?? {}, ip: record.source.ip }
    this.route = s.l7.router?.forConnection(entry, caller, (ep) => this.targetOf(ep)) ?? null
  }

  pick (): UpstreamTarget | null {
    const first = this.firstEndpoint
    if (first !== null) {
      this.firstEndpoint = null
      return this.targetOf(first)
    }
    const ep = this.s.routes.pick(this.entry.key)
    if (ep === null) return null
    return this.targetOf(ep)
  }

  targetOf (ep: Endpoint): UpstreamTarget {
    let t = this.targets.get(ep.id)
    if (t === undefined) {
      t = this.makeTarget(ep)
      this.targets.set(ep.id, t)
    }
    return t
  }

  private makeTarget (ep: Endpoint): UpstreamTarget {
    const { mesh, routes, connector, timeoutMs, clock } = this.s
    const conn = this.record
    const address = { address: ep.address, port: ep.port, family: ep.family }
    const { path, destinationPrincipal } = pathTo(ep.address, mesh, routes)
    const record = new Conn('outbound', conn.downstream, clock)
    Object.assign(record.source, conn.source)
    record.originalDst = conn.originalDst
    record.service = conn.service
    record.endpoint = address
    record.destination = workloadRef(ep.pod)
    record.sourcePrincipal = conn.sourcePrincipal
    record.destinationPrincipal = destinationPrincipal
    record.mtls = path.kind === 'tunnel'
    const key = `${this.identity}|${path.kind}|${ep.address}:${ep.port}`
    switch (path.kind) {
      case 'direct':
        return { key, address, record, local: null, dial: async () => await dialSocket(connector, address, timeoutMs) }
      case 'local': {
        const local = path.local
        return { key, address, record, local: localAuthorizer(record, local.pod, mesh?.authz, clock, this.s.l7.rateLimitOf?.(local.pod) ?? null), dial: async () => await dialSocket(local.connector, address, timeoutMs) }
      }
      case 'tunnel': {
        const tunnels = mesh!.tunnels!
        const identities = mesh!.identities!
        const sourceId = conn.sourcePrincipal
        return {
          key,
          address,
          record,
          local: null,
          dial: async () => {
            const svid = sourceId === null ? null : identities.svidFor(sourceId)
            if (svid === null) throw Object.assign(new Error('no certificate for the source yet'), { code: 'FERRY_ERR_TUNNEL_CONNECT' })
            return await tunnels.open({
              sourceSvid: () => identities.svidFor(sourceId as string) ?? svid,
              expectedPeer: path.expected,
              node: path.node,
              authority: address,
              ...(conn.source.ip === '' ? {} : { sourceAddress: conn.source.ip })
            })
          }
        }
      }
    }
  }
}

/** The same-node destination's per-request authorization and record (as same-node.ts's inbound record). */
function localAuthorizer (out: Conn, pod: Pod, authz: InboundAuthorizer | undefined, clock: Clock, rateLimit: RequestRateLimit | null): RequestAuthorizer {
  const inb = destinationRecord(out, pod, clock)
  const ns = out.source.namespace
  return {
    record: inb,
    authorize: authz === undefined ? () => true : (view) => authz.authorizeRequest(inb, pod, view, ns),
    rateLimit
  }
}

/**
 * A detect port's connection that stayed L4: relay `upstream` (the connection made to the
 * first endpoint) after whatever decision applies, passing on the client's end if it
 * came during detection (sniff.ts passClientEnd).
 */
export type DetectedL4 = (upstream: RelayEnd, sniffed: SniffResult) => void

/**
 * Serves `socket` (the application's, connection `conn` routed to `entry`) with the HTTP
 * engine; `first` is the endpoint routing chose for the connection. `version` null: the
 * port's protocol is to be detected — `first` is connected at once and the client's
 * first bytes decide; L4 goes to `relayL4` with that connection.
 */
export function serveSource (conn: Conn, socket: Socket, entry: ServicePortEntry, version: DeclaredVersion | null, s: SourceL7, first: Endpoint | null, relayL4: DetectedL4): void {
  // Declared: the first request goes to the endpoint routing chose. Detect: that endpoint
  // is connected now, and the engine sends the first request on that connection.
  const ds = new SourceDownstream(conn, entry, s, version !== null ? first : null)
  const ended = (): void => { finish(conn, s.telemetry, conn.errorCode === null ? 'ok' : 'reset', conn.errorCode) }
  socket.once('close', ended)
  if (version !== null) {
    s.l7.engine.serveDeclared(socket, version, ds)
    return
  }
  const target = first === null ? ds.pick() : ds.targetOf(first)
  if (target === null) { socket.resetAndDestroy(); return }
  target.dial().then((up) => {
    if (socket.destroyed) { up.destroy(); return }
    sniff(socket, up, s.l7.engine.deps.limits.maxHeaderBytes, (r) => {
      if (r.kind === 'l4') {
        s.l7.detected(r.reason)
        socket.off('close', ended)
        relayL4(up, r)
        return
      }
      s.l7.detected(r.version)
      s.l7.engine.serve(r.end ?? socket, r.version, ds, { target, end: r.up ?? up })
    })
  }, (err: unknown) => {
    conn.errorCode = (err as { code?: string }).code ?? 'EUNKNOWN'
    socket.resetAndDestroy()
  })
}
