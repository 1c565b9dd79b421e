import type { Socket } from 'node:net'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { accepted, finish, opened, reject } from './account'
import { type InboundAuthorizer, resetEnds } from './authorize'
import { type Clock, Conn } from './conn'
import { type ConnectRequest, connectUpstream } from './connect'
import { workloadRef } from './identify'
import type { LocalPod } from './mesh'
import { relay } from './relay'
import type { Shortcuts } from './shortcuts'

// Same-node fast path (outbound, path `local`): the destination pod is enrolled here, so
// the proxy connects from inside *its* netns to the endpoint (over its lo, which
// sk_lookup ignores) — the bytes never leave the node and never need TLS. The proxy
// holds both identities, so the connection is accounted twice, as it would be by two
// proxies: the outbound record of the source and an inbound record of the destination
// (the destination side is where inbound policy applies). Both carry both
// principals and mtls=false, share the application's socket for byte counts, and end
// together. The authorize stage decides on the inbound record (the source is a pod of
// this node: its principal and namespace are known); denied, both records end `denied`
// and the application's socket is reset.
//
// Once authorized and connected, the connection is spliced (Shortcuts.splice): the two
// apps' sockets pass bytes to each other directly, in the kernel, whenever nothing of
// theirs is in flight through the proxy; the relay below still carries whatever takes
// TCP, and the FINs. Bytes that went direct are added to both records at the end.

export function deliverLocally (out: Conn, socket: Socket, local: LocalPod, telemetry: ConnTelemetry, timeoutMs: number, clock: Clock, authz?: InboundAuthorizer, shortcuts?: Shortcuts): void {
  const inb = new Conn('inbound', socket, clock)
  inb.source.pod = out.source.pod
  inb.source.namespace = out.source.namespace
  inb.source.workload = out.source.workload
  inb.source.ip = out.source.ip
  inb.source.port = out.source.port
  inb.originalDst = out.endpoint
  inb.endpoint = out.endpoint
  inb.service = out.service
  inb.destination = workloadRef(local.pod)
  inb.sourcePrincipal = out.sourcePrincipal
  inb.destinationPrincipal = out.destinationPrincipal
  accepted(inb, telemetry)
  opened(inb, telemetry)
  const ns = out.source.namespace
  if (authz !== undefined && !authz.authorize(inb, local.pod, ns)) {
    out.authz = inb.authz
    finish(inb, telemetry, 'denied', null)
    reject(out, telemetry, 'denied', null)
    return
  }
  const connector = shortcuts === undefined ? local.connector : (req: ConnectRequest): Socket => local.connector({ ...req, joinHop: false })
  connectUpstream(out, out.endpoint!, connector, timeoutMs,
    (upstream) => {
      inb.upstream = upstream
      const spliced = shortcuts?.splice(socket, upstream as Socket, local) ?? null
      // Ends the splice (once; later calls add nothing) and counts its bytes on both records.
      const settleSplice = (): void => {
        if (spliced === null) return
        const { fromSource, fromDestination } = spliced.end()
        for (const c of [out, inb]) { c.splicedReceived += fromSource; c.splicedSent += fromDestination }
      }
      const untrack = authz?.track(inb, local.pod, ns, () => {
        settleSplice()
        out.authz = inb.authz
        finish(inb, telemetry, 'denied', null)
        finish(out, telemetry, 'denied', null)
        resetEnds(socket, upstream)
      })
      relay(socket, upstream, (code) => {
        untrack?.()
        settleSplice()
        finish(out, telemetry, code === null ? 'ok' : 'reset', code)
        finish(inb, telemetry, code === null ? 'ok' : 'reset', code)
      })
    },
    (result, code) => {
      reject(out, telemetry, result, code)
      finish(inb, telemetry, result, code)
    })
}
