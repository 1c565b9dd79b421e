import { BlockList, isIP, SocketAddress } from 'node:net'
import type { IPFamily } from './manifest/spec'

// The lab's address plan. Pure functions; every address lives in a namespace the lab
// made (nothing here is ever put on an interface of the host's own namespace).
//
//   underlay       172.30.0.0/24, fd30::/64           node i: 172.30.0.i, fd30::i
//   controller     172.30.0.254 (on the underlay bridge, in the underlay namespace)
//   pods of node i 10.244.i.0/24, fd00:244:i::/64     pod k on node i: .k and ::k (k ≥ 2)
//   pod gateway    169.254.1.1 (on the node's lo), fe80::1 (on each pod's host-side veth)
//   services       10.96.0.0/16, fd00:96::/112         never on any interface
//
// Node and pod numbers are written in decimal in both families (node 12 → 10.244.12.0/24
// and fd00:244:12::/64), so a pod's two addresses read alike.

/** Node numbers 1..253 of the underlay's /24; .254 is the controller's. */
export const MAX_NODES = 253
/** The lab's CA listens here, on the underlay bridge: every node reaches it directly. */
export const CONTROLLER_UNDERLAY_IP = '172.30.0.254'
/** Host numbers 2..254 of a node's /24. */
export const FIRST_POD_HOST = 2
export const MAX_PODS_PER_NODE = 253

export const UNDERLAY = Object.freeze({ v4Prefix: 24, v6Prefix: 64, v4Cidr: '172.30.0.0/24', v6Cidr: 'fd30::/64' })
export const POD_GATEWAY = Object.freeze({ v4: '169.254.1.1', v6: 'fe80::1' })
export const SERVICE_CIDRS = Object.freeze({ IPv4: '10.96.0.0/16', IPv6: 'fd00:96::/112' } as const)
/** Kubernetes keeps the first addresses of the service range for itself (API server, DNS). */
export const FIRST_SERVICE_OFFSET = 10
const SERVICE_OFFSETS = 1 << 16

export function nodeUnderlayIPs (i: number): { v4: string, v6: string } {
  checkNodeIndex(i)
  return { v4: `172.30.0.${i}`, v6: `fd30::${i}` }
}

export function nodePodCIDRs (i: number): { v4: string, v6: string } {
  checkNodeIndex(i)
  return { v4: `10.244.${i}.0/24`, v6: `fd00:244:${i}::/64` }
}

export function podIPs (node: number, host: number): { v4: string, v6: string } {
  checkNodeIndex(node)
  if (!Number.isInteger(host) || host < FIRST_POD_HOST || host >= FIRST_POD_HOST + MAX_PODS_PER_NODE) {
    throw new RangeError(`pod host number ${host} is outside ${FIRST_POD_HOST}..${FIRST_POD_HOST + MAX_PODS_PER_NODE - 1}`)
  }
  return { v4: `10.244.${node}.${host}`, v6: `fd00:244:${node}::${host}` }
}

function checkNodeIndex (i: number): void {
  if (!Number.isInteger(i) || i < 1 || i > MAX_NODES) throw new RangeError(`node number ${i} is outside 1..${MAX_NODES}`)
}

export function familyOfIP (ip: string): IPFamily | null {
  const f = isIP(ip)
  return f === 4 ? 'IPv4' : f === 6 ? 'IPv6' : null
}

/** Canonical spelling (RFC 5952 for IPv6), or null when `ip` is not an address. */
export function canonicalAddress (ip: string): string | null {
  const f = isIP(ip)
  if (f === 4) return ip
  if (f === 6) return new SocketAddress({ address: ip, family: 'ipv6' }).address
  return null
}

const serviceRanges = new BlockList()
serviceRanges.addSubnet('10.96.0.0', 16, 'ipv4')
serviceRanges.addSubnet('fd00:96::', 112, 'ipv6')

export function inServiceRange (ip: string): boolean {
  const f = isIP(ip)
  return f !== 0 && serviceRanges.check(ip, f === 4 ? 'ipv4' : 'ipv6')
}

function serviceIP (family: IPFamily, offset: number): string {
  return family === 'IPv4' ? `10.96.${offset >> 8}.${offset & 0xff}` : `fd00:96::${offset.toString(16)}`
}

/**
 * Hands out service cluster IPs in order, skipping those already taken (asked for by a
 * manifest). Same inputs, same addresses: services are given in a stable order.
 */
export class ServiceIPAllocator {
  private readonly taken = new Set<string>()
  private readonly next: Record<IPFamily, number> = { IPv4: FIRST_SERVICE_OFFSET, IPv6: FIRST_SERVICE_OFFSET }

  reserve (ip: string): void {
    const c = canonicalAddress(ip)
    if (c === null || !inServiceRange(c)) throw new RangeError(`${ip} is not in the service ranges ${SERVICE_CIDRS.IPv4}, ${SERVICE_CIDRS.IPv6}`)
    if (this.taken.has(c)) throw new RangeError(`${ip} is already taken`)
    this.taken.add(c)
  }

  allocate (family: IPFamily): string {
    for (let off = this.next[family]; off < SERVICE_OFFSETS - 1; off++) {
      const ip = serviceIP(family, off)
      if (!this.taken.has(ip)) {
        this.taken.add(ip)
        this.next[family] = off + 1
        return ip
      }
    }
    throw new RangeError(`the ${family} service range ${SERVICE_CIDRS[family]} is full`)
  }
}
