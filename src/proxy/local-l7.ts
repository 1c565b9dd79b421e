import type { Socket } from 'node:net'
import { passClientEnd, type SniffResult } from '../http/sniff'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { accepted, finish, opened, reject } from './account'
import type { InboundAuthorizer } from './authorize'
import type { Clock, Conn } from './conn'
import { connectUpstream } from './connect'
import { relayAndFinish } from './finish'
import type { L7Deps } from './l7-deps'
import { type DestinationPlan, serveDestination } from './l7-destination'
import type { LocalPod } from './mesh'
import type { RelayEnd } from './relay'
import { destinationRecord } from './same-node'

// L7 on the same-node path (outbound, path `local`), where this process is the
// destination's proxy too. The destination's decision is made here, from the destination
// pod's workload (l7-destination.ts planDestination: L7Table.forWorkload with the L7
// policy that selects the pod on that port), whatever address the client dialed — a
// Service or the pod IP — exactly as the destination node decides a connection that
// comes through the tunnel. Two cases:
//
//   serveLocalDestination   no L7 at the source (a pod IP, a Service port without L7): the
//                           connection is handled as the destination node's proxy handles
//                           one (serveDestination) on the destination's inbound record —
//                           each request normalized, authorized with the pod's policies
//                           (403 / PERMISSION_DENIED, the connection stays), reported as
//                           the destination, forwarded over connections made inside the
//                           pod's netns. The source's outbound record is the connection as
//                           the source saw it and ends with the client's socket.
//   localDetectL4           L7 at the source on a detect port whose first endpoint is a
//                           local pod (l7-source.ts serveSource connects it at once and
//                           detects; HTTP requests get the destination's part per request
//                           there): the destination's part for bytes that are not HTTP —
//                           authorized as a connection before they are relayed.
//
// Nothing reaches the pod before the decision that applies: a connection every request of
// which would be denied (an L4 DENY, no ALLOW that any request could match:
// InboundAuthorizer.admitsSomeRequest) is refused at once, as on the L4 path, and no
// connection to the pod is made; a declared port's connections reach the pod only with a
// request allowed; a detect port's connection to the pod is made at once (a server-first
// greeting flows) but the client's bytes reach it only once authorized — per request
// (HTTP/1.x, HTTP/2), or as a connection, where an L7 DENY applies without its L7
// conditions and an L7 ALLOW cannot match (bytes that are not HTTP, or an end before
// any). A connection relayed as L4 here is not spliced: the proxy has read bytes from
// both sockets while detecting.

export interface LocalL7 {
  readonly l7: L7Deps
  readonly telemetry: ConnTelemetry
  readonly timeoutMs: number
  readonly clock: Clock
  readonly authz: InboundAuthorizer | undefined
}

/** `out`: the outbound record, routed to `local`'s pod (out.endpoint), where `plan` engages L7. */
export function serveLocalDestination (out: Conn, socket: Socket, local: LocalPod, plan: DestinationPlan, d: LocalL7): void {
  const { telemetry, authz } = d
  const pod = local.pod
  const inb = destinationRecord(out, pod, d.clock)
  accepted(inb, telemetry)
  opened(inb, telemetry)
  const ns = out.source.namespace
  if (authz !== undefined && !authz.admitsSomeRequest(inb, pod, ns)) {
    denyBoth(out, inb, telemetry)
    return
  }
  const target = out.endpoint!
  // The destination's record ends with the socket (serveDestination), the source's too;
  // relayed as L4, both end with the relay (finish.ts).
  const ended = (): void => {
    if (inb.result === 'denied') {
      out.authz = inb.authz
      finish(out, telemetry, 'denied', null)
      return
    }
    finish(out, telemetry, out.errorCode === null ? 'ok' : 'reset', out.errorCode)
  }
  socket.once('close', ended)
  const relayL4 = (upstream: RelayEnd): void => {
    socket.off('close', ended)
    relayAndFinish(socket, upstream, { telemetry, records: [out, inb], recheck: authz === undefined ? undefined : { authz, record: inb, pod, ipNamespace: ns } })
  }
  const dest = { l7: d.l7, telemetry, timeoutMs: d.timeoutMs, authz }
  if (plan.version !== null) {
    serveDestination(inb, socket, pod, target, local.connector, ns, plan, dest, null, relayL4)
    return
  }
  connectUpstream(out, target, local.connector, d.timeoutMs,
    (upstream) => { serveDestination(inb, socket, pod, target, local.connector, ns, plan, dest, upstream, relayL4) },
    (result, code) => {
      socket.off('close', ended)
      reject(out, telemetry, result, code)
      finish(inb, telemetry, result, code)
    })
}

/**
 * Before l7-source.ts connects a detect port's first endpoint, `local`'s pod: the
 * destination's refusal at once (null: refused, both records accounted), else the L4
 * relay for a connection detected not HTTP, which authorizes it as a connection first.
 */
export function localDetectL4 (out: Conn, local: LocalPod, d: LocalL7): ((upstream: RelayEnd, sniffed: SniffResult) => void) | null {
  const { telemetry, authz } = d
  const pod = local.pod
  const ns = out.source.namespace
  const inb = destinationRecord(out, pod, d.clock)
  if (authz !== undefined && !authz.admitsSomeRequest(inb, pod, ns)) {
    accepted(inb, telemetry)
    opened(inb, telemetry)
    denyBoth(out, inb, telemetry)
    return null
  }
  return (upstream, sniffed) => {
    accepted(inb, telemetry)
    opened(inb, telemetry)
    if (authz !== undefined && !authz.authorize(inb, pod, ns)) {
      if (authz.l7PolicyFor(pod, inb.originalDst?.port ?? 0) !== null) d.l7.engine.deps.refusals.refused('not_http')
      upstream.resetAndDestroy()
      denyBoth(out, inb, telemetry)
      return
    }
    passClientEnd(sniffed, upstream)
    relayAndFinish(out.downstream!, upstream, { telemetry, records: [out, inb], recheck: authz === undefined ? undefined : { authz, record: inb, pod, ipNamespace: ns } })
  }
}

/** Both records end `denied` (the destination's decision on the source's too); the client's socket is reset. */
function denyBoth (out: Conn, inb: Conn, telemetry: ConnTelemetry): void {
  out.authz = inb.authz
  finish(inb, telemetry, 'denied', null)
  reject(out, telemetry, 'denied', null)
}
