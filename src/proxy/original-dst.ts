import { canonicalIP, familyOf } from '../discovery/ip'
import { type Conn, familyOfSocket } from './conn'

// Original-destination stage: where the application meant to connect.
// Outbound: eBPF recorded it, keyed by {pod netns cookie, family, app's local port};
// the lookup is bound to the pod's netns cookie by whoever builds the handler.
// Inbound: sk_lookup delivered the SYN unchanged, so it is the accepted socket's own
// local address.

export type OriginalDstLookup = (family: 4 | 6, localPort: number) => { address: string, port: number } | null

export function originalDstOutbound (conn: Conn, lookup: OriginalDstLookup): boolean {
  const port = conn.downstream.remotePort
  if (port === undefined) return false
  const found = lookup(familyOfSocket(conn.downstream), port)
  if (found === null) return false
  const address = canonicalIP(found.address)
  if (address === null) return false
  conn.originalDst = { address, port: found.port, family: familyOf(address) }
  return true
}

export function originalDstInbound (conn: Conn): boolean {
  const address = canonicalIP(conn.downstream.localAddress ?? '')
  const port = conn.downstream.localPort
  if (address === null || port === undefined) return false
  conn.originalDst = { address, port, family: familyOf(address) }
  return true
}
