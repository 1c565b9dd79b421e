import { isIPv4, isIPv6 } from 'node:net'

// The CONNECT target: `:authority` is the original destination as "ip:port", IPv6 in
// brackets ("[fd00::5]:8080"). HBONE carries addresses, never host names: the source
// proxy has already resolved and routed, and the destination proxy must not resolve
// anything a peer sends it. Parsing is strict because the string comes off the network.
//
// `forwarded` (RFC 7239, `for=` only) optionally carries the original source address:
// informational (access logs), never used to decide anything.

export interface TunnelAuthority {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

const MAX_AUTHORITY = 64
const PORT = /^[1-9][0-9]{0,4}$/
const V4 = /^([0-9.]{7,15}):([0-9]{1,5})$/
const V6 = /^\[([0-9a-fA-F:.]{2,45})\]:([0-9]{1,5})$/

/** Parses "ip:port" / "[ipv6]:port"; null for anything else (host names, zones, port 0, junk). */
export function parseAuthority (text: unknown): TunnelAuthority | null {
  if (typeof text !== 'string' || text.length > MAX_AUTHORITY) return null
  const m = V4.exec(text) ?? V6.exec(text)
  if (m === null) return null
  const [, address, portText] = m
  const family = text.startsWith('[') ? 6 : 4
  if (family === 4 ? !isIPv4(address) : !isIPv6(address)) return null
  if (!PORT.test(portText)) return null
  const port = Number(portText)
  if (port > 65535) return null
  return Object.freeze({ address: family === 6 ? address.toLowerCase() : address, port, family })
}

/** "ip:port", brackets for IPv6 (the family is taken from the address when not given). */
export function formatAuthority (a: { readonly address: string, readonly port: number }): string {
  return isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}

/** The `forwarded` header value for a source address: for=10.0.0.1 / for="[fd00::1]". */
export function forwardedFor (address: string): string | null {
  if (isIPv4(address)) return `for=${address}`
  if (isIPv6(address)) return `for="[${address}]"`
  return null
}

/** The address in a `forwarded: for=…` header we wrote, or null. */
export function parseForwardedFor (value: unknown): string | null {
  if (typeof value !== 'string' || value.length > MAX_AUTHORITY) return null
  const m = /^for=(?:([0-9.]{7,15})|"\[([0-9a-fA-F:.]{2,45})\]")$/.exec(value)
  if (m === null) return null
  if (m[1] !== undefined) return isIPv4(m[1]) ? m[1] : null
  return isIPv6(m[2]) ? m[2].toLowerCase() : null
}
