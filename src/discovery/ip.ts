import { SocketAddress, isIP } from 'node:net'

// One canonical spelling per address, so that index keys built from the cluster file
// match addresses read off sockets and eBPF maps (2001:DB8::0:1 == 2001:db8::1, and a
// v4-mapped ::ffff:10.0.0.1 is the IPv4 address 10.0.0.1).

export type Family = 4 | 6

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i

/** The canonical form of an IP address, or null if it is not one. */
export function canonicalIP (ip: string): string | null {
  const mapped = V4_MAPPED.exec(ip)
  if (mapped !== null) return isIP(mapped[1]) === 4 ? mapped[1] : null
  const family = isIP(ip)
  if (family === 4) return ip
  if (family === 6) return new SocketAddress({ address: ip, family: 'ipv6' }).address
  return null
}

/** Family of a canonical address (call canonicalIP first). */
export function familyOf (ip: string): Family {
  return ip.includes(':') ? 6 : 4
}
