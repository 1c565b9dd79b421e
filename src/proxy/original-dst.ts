import type { Socket } from 'node:net'
import { canonicalIP, familyOf } from '../discovery/ip'
import { type Conn, familyOfSocket } from './conn'

// Original-destination stage: where the application meant to connect.
// Outbound: eBPF recorded it, keyed by {pod netns cookie, family, app's local port};
// the lookup is bound to the pod's netns cookie by whoever builds the handler.
// Inbound: sk_lookup delivered the SYN unchanged, so it is the accepted socket's own
// local address. (From the tunnel, it is the CONNECT's :authority: tunnel-inbound.ts.)

export type OriginalDstLookup = (family: 4 | 6, localPort: number) => { address: string, port: number } | null

export function originalDstOutbound (conn: Conn, socket: Socket, lookup: OriginalDstLookup): boolean {
  const port = socket.remotePort
  if (port === undefined) return false
  const found = lookup(familyOfSocket(socket), port)
  if (found === null) return false
  const address = canonicalIP(found.address)
  if (address === null) return false
  conn.originalDst = { address, port: found.port, family: familyOf(address) }
  return true
}

/**
 * `own`: the listener's own addresses. A connection made to one of them was not steered
 * by sk_lookup (a process inside the pod's netns dialled the listener itself): it has no
 * destination but the proxy, and relaying it would connect the proxy to itself.
 */
export function originalDstInbound (conn: Conn, socket: Socket, own: ReadonlyArray<{ readonly address: string, readonly port: number }> = []): boolean {
  const address = canonicalIP(socket.localAddress ?? '')
  const port = socket.localPort
  if (address === null || port === undefined) return false
  if (own.some((o) => o.port === port && canonicalIP(o.address) === address)) return false
  conn.originalDst = { address, port, family: familyOf(address) }
  return true
}
