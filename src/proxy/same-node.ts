import type { Socket } from 'node:net'
import type { Pod } from '../discovery/model'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { accepted, finish, opened, reject } from './account'
import type { InboundAuthorizer } from './authorize'
import { type Clock, Conn } from './conn'
import { connectUpstream } from './connect'
import { relayAndFinish } from './finish'
import { workloadRef } from './identify'
import type { LocalPod } from './mesh'
import type { Splicer } from './splice'
import type { ConnectOutcome } from './route-table'

// Same-node fast path (outbound, path `local`): the destination pod is enrolled here, so
// the proxy connects from inside *its* netns to the endpoint (over its lo, which
// sk_lookup ignores) — the bytes never leave the node and never need TLS. The proxy
// holds both identities, so the connection is accounted twice, as it would be by two
// proxies: the outbound record of the source and an inbound record of the destination
// (the destination side is where inbound policy applies). Both carry both
// principals and mtls=false, share the application's socket for byte counts, and end
// together (finish.ts). The authorize stage decides on the inbound record (the source is
// a pod of this node: its principal and namespace are known); denied, both records end
// `denied` and the application's socket is reset.
//
// Once authorized and connected, the connection is offered to the Splicer (splice.ts):
// the two apps' sockets may then pass bytes to each other directly, in the kernel,
// whenever nothing of theirs is in flight through the proxy; the relay still carries
// whatever takes TCP, and the FINs. Bytes that went direct are added to both records at
// the end.

export interface LocalDelivery {
  readonly telemetry: ConnTelemetry
  readonly timeoutMs: number
  readonly clock: Clock
  readonly authz?: InboundAuthorizer
  readonly splicer?: Splicer
  /** Outlier detection on the Service (src/proxy/route-table.ts): the connect's outcome. */
  readonly outcome?: ConnectOutcome
}

/**
 * The destination's inbound record of a same-node connection (`out`: the source's
 * outbound record, routed to an endpoint of `pod`): both principals, the source's
 * address and namespace, the endpoint as the address it was reached on.
 */
export function destinationRecord (out: Conn, pod: Pod, clock: Clock): Conn {
  const inb = new Conn('inbound', out.downstream, clock)
  Object.assign(inb.source, out.source)
  inb.originalDst = out.endpoint
  inb.endpoint = out.endpoint
  inb.service = out.service
  inb.destination = workloadRef(pod)
  inb.sourcePrincipal = out.sourcePrincipal
  inb.destinationPrincipal = out.destinationPrincipal
  return inb
}

export function deliverLocally (out: Conn, socket: Socket, local: LocalPod, d: LocalDelivery): void {
  const { telemetry, authz } = d
  const inb = destinationRecord(out, local.pod, d.clock)
  accepted(inb, telemetry)
  opened(inb, telemetry)
  const ns = out.source.namespace
  if (authz !== undefined && !authz.authorize(inb, local.pod, ns)) {
    out.authz = inb.authz
    finish(inb, telemetry, 'denied', null)
    reject(out, telemetry, 'denied', null)
    return
  }
  connectUpstream(out, out.endpoint!, local.connector, d.timeoutMs,
    (upstream) => {
      d.outcome?.('connected')
      relayAndFinish(socket, upstream, {
        telemetry,
        records: [out, inb],
        recheck: authz === undefined ? undefined : { authz, record: inb, pod: local.pod, ipNamespace: ns },
        splice: d.splicer?.splice(socket, upstream, local) ?? null
      })
    },
    (result, code) => {
      if (result !== 'reset') d.outcome?.('failed')
      reject(out, telemetry, result, code)
      finish(inb, telemetry, result, code)
    })
}
