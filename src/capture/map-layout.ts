import type { Codec } from '../native'
import { bytesToIp, ipToBytes } from './ip-bytes'

// TWIN of bpf/ferry_shared.h: the byte layout of every map key and value, and the
// numeric flags. test/capture/map-layout.test.ts compiles the C header and checks
// sizes and offsets against LAYOUT below. Multi-byte fields are host order
// (little endian on every platform Ferry runs on) unless named *_be.

export const POD_F_FAIL_CLOSED = 1 << 0
export const DIR_OUTBOUND = 0
export const DIR_INBOUND = 1
export const UID_LEN = 64
/** Data-path workers an agent runs at most (FERRY_MAX_WORKERS): listener slots per pod, bits of the live set. */
export const MAX_WORKERS = 8

/** Sizes and field offsets, as the C compiler lays them out. */
export const LAYOUT = Object.freeze({
  ferry_pod: { size: 8, fields: { slot: 0, flags: 4 } },
  ferry_ip_key: { size: 20, fields: { family: 0, pad: 1, addr: 4 } },
  ferry_excl_key: { size: 8, fields: { slot: 0, dir: 4, pad: 5, port: 6 } },
  ferry_dst: { size: 20, fields: { family: 0, pad: 1, port: 2, addr: 4 } },
  ferry_orig_key: { size: 16, fields: { netns_cookie: 0, family: 8, pad: 9, port: 10, pad2: 12 } },
  ferry_uid_key: { size: UID_LEN, fields: { uid: 0 } },
  ferry_sock_key: { size: 48, fields: { netns_cookie: 0, family: 8, pad: 9, local_port: 10, remote_port: 12, pad2: 14, local_addr: 16, remote_addr: 32 } },
  ferry_sock_peer: { size: 24, fields: { addr: 0, cookie: 8, rcv_base: 16, flags: 20 } },
  ferry_sockmap_stats: { size: 40, fields: { from_pod_msgs: 0, from_pod_bytes: 8, to_pod_msgs: 16, to_pod_bytes: 24, tcp_msgs: 32 } },
  ferry_splice: { size: 56, fields: { to: 0, bytes: 48 } },
  ferry_probe_key: { size: 40, fields: { family: 0, pad: 1, src_port: 2, dst_port: 4, pad2: 6, src_addr: 8, dst_addr: 24 } },
  ferry_probe_conn: { size: 16, fields: { connected_ns: 0, sock_cookie: 8 } },
  ferry_probe_port_key: { size: 8, fields: { slot: 0, port: 4, pad: 6 } },
  ferry_probe_stats: { size: 24, fields: { admitted: 0, not_probe_port: 8, expired: 16 } },
  ferry_syn_stats: { size: 32, fields: { admitted: 0, dropped: 8, untracked: 16, peer: 24 } }
})

/** Constants the C header defines; checked by the same test. */
export const CONSTANTS = Object.freeze({
  FERRY_POD_F_FAIL_CLOSED: POD_F_FAIL_CLOSED,
  FERRY_DIR_OUTBOUND: DIR_OUTBOUND,
  FERRY_DIR_INBOUND: DIR_INBOUND,
  FERRY_FAMILY_V4: 4,
  FERRY_FAMILY_V6: 6,
  FERRY_UID_LEN: UID_LEN,
  FERRY_MAX_WORKERS: MAX_WORKERS,
  FERRY_SOCK_F_POD_END: 1
})

export interface PodValue { slot: number, flags: number }
export interface ExclKey { slot: number, dir: number, port: number }
export interface Dst { family: 4 | 6, address: string, port: number }
export interface OrigKey { netnsCookie: bigint, family: 4 | 6, port: number }
export interface ProbePortKey { slot: number, port: number }
/** A connection the kubelet made, as its SYN names it (src: the kubelet's end). */
export interface ProbeKey { srcAddress: string, srcPort: number, dstAddress: string, dstPort: number }
export interface ProbeConn { connectedNs: bigint, sockCookie: bigint }
/** What sk_lookup did with the kubelet's connections to one pod. */
export interface ProbeStats { admitted: bigint, notProbePort: bigint, expired: bigint }
/** What bpf/tunnel_syn.bpf.c did with the SYNs that reached the tunnel port's listeners. */
export interface SynStats { admitted: bigint, dropped: bigint, untracked: bigint, peer: bigint }
/** What bpf/sk_msg.bpf.c did with the hops' messages: by the shortcut, by direction, or left to TCP. */
export interface SockmapStats { fromPodMsgs: bigint, fromPodBytes: bigint, toPodMsgs: bigint, toPodBytes: bigint, tcpMsgs: bigint }
/** One end of a TCP connection as that end sees it; a v4-mapped v6 address counts as v4. */
export interface SockKey { netnsCookie: bigint, localAddress: string, localPort: number, remoteAddress: string, remotePort: number }

const L = LAYOUT

export const podCodec: Codec<PodValue> = {
  size: L.ferry_pod.size,
  encode (v) {
    const b = Buffer.alloc(this.size)
    b.writeUInt32LE(v.slot, L.ferry_pod.fields.slot)
    b.writeUInt32LE(v.flags, L.ferry_pod.fields.flags)
    return b
  },
  decode: (b) => ({ slot: b.readUInt32LE(L.ferry_pod.fields.slot), flags: b.readUInt32LE(L.ferry_pod.fields.flags) })
}

/** Key of ferry_pod_ips: an IP address string. */
export const ipKeyCodec: Codec<string> = {
  size: L.ferry_ip_key.size,
  encode (address) {
    const { family, bytes } = ipToBytes(address)
    const b = Buffer.alloc(this.size)
    b.writeUInt8(family, L.ferry_ip_key.fields.family)
    bytes.copy(b, L.ferry_ip_key.fields.addr)
    return b
  },
  decode: (b) => bytesToIp(familyOf(b.readUInt8(L.ferry_ip_key.fields.family)), b.subarray(L.ferry_ip_key.fields.addr))
}

export const exclKeyCodec: Codec<ExclKey> = {
  size: L.ferry_excl_key.size,
  encode (k) {
    const b = Buffer.alloc(this.size)
    b.writeUInt32LE(k.slot, L.ferry_excl_key.fields.slot)
    b.writeUInt8(k.dir, L.ferry_excl_key.fields.dir)
    b.writeUInt16LE(k.port, L.ferry_excl_key.fields.port)
    return b
  },
  decode: (b) => ({
    slot: b.readUInt32LE(L.ferry_excl_key.fields.slot),
    dir: b.readUInt8(L.ferry_excl_key.fields.dir),
    port: b.readUInt16LE(L.ferry_excl_key.fields.port)
  })
}

export const dstCodec: Codec<Dst> = {
  size: L.ferry_dst.size,
  encode (d) {
    const b = Buffer.alloc(this.size)
    b.writeUInt8(d.family, L.ferry_dst.fields.family)
    b.writeUInt16LE(d.port, L.ferry_dst.fields.port)
    ipToBytes(d.address).bytes.copy(b, L.ferry_dst.fields.addr)
    return b
  },
  decode (b) {
    const family = familyOf(b.readUInt8(L.ferry_dst.fields.family))
    return { family, address: bytesToIp(family, b.subarray(L.ferry_dst.fields.addr)), port: b.readUInt16LE(L.ferry_dst.fields.port) }
  }
}

export const origKeyCodec: Codec<OrigKey> = {
  size: L.ferry_orig_key.size,
  encode (k) {
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(k.netnsCookie, L.ferry_orig_key.fields.netns_cookie)
    b.writeUInt8(k.family, L.ferry_orig_key.fields.family)
    b.writeUInt16LE(k.port, L.ferry_orig_key.fields.port)
    return b
  },
  decode: (b) => ({
    netnsCookie: b.readBigUInt64LE(L.ferry_orig_key.fields.netns_cookie),
    family: familyOf(b.readUInt8(L.ferry_orig_key.fields.family)),
    port: b.readUInt16LE(L.ferry_orig_key.fields.port)
  })
}

/** Key of ferry_socks, ferry_sock_peers and ferry_splice. */
export const sockKeyCodec: Codec<SockKey> = {
  size: L.ferry_sock_key.size,
  encode (k) {
    const f = L.ferry_sock_key.fields
    const local = ipToBytes(k.localAddress)
    const remote = ipToBytes(k.remoteAddress)
    if (local.family !== remote.family) throw new RangeError(`ends of one connection in two families: ${k.localAddress}, ${k.remoteAddress}`)
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(k.netnsCookie, f.netns_cookie)
    b.writeUInt8(local.family, f.family)
    b.writeUInt16LE(k.localPort, f.local_port)
    b.writeUInt16LE(k.remotePort, f.remote_port)
    local.bytes.copy(b, f.local_addr)
    remote.bytes.copy(b, f.remote_addr)
    return b
  },
  decode: (b) => decodeSockKey(b)
}

/** Value of ferry_splice: where a pod's end may send directly, and the bytes that did (read back). */
export interface Splice { to: SockKey, bytes: bigint }

export const spliceCodec: Codec<Splice> = {
  size: L.ferry_splice.size,
  encode (v) {
    const b = Buffer.alloc(this.size)
    sockKeyCodec.encode(v.to).copy(b, L.ferry_splice.fields.to)
    b.writeBigUInt64LE(v.bytes, L.ferry_splice.fields.bytes)
    return b
  },
  decode (b) {
    const to = b.subarray(L.ferry_splice.fields.to, L.ferry_splice.fields.to + L.ferry_sock_key.size)
    return { to: decodeSockKey(to), bytes: b.readBigUInt64LE(L.ferry_splice.fields.bytes) }
  }
}

function decodeSockKey (b: Buffer): SockKey {
  const f = L.ferry_sock_key.fields
  const family = familyOf(b.readUInt8(f.family))
  return {
    netnsCookie: b.readBigUInt64LE(f.netns_cookie),
    localAddress: bytesToIp(family, b.subarray(f.local_addr, f.local_addr + 16)),
    localPort: b.readUInt16LE(f.local_port),
    remoteAddress: bytesToIp(family, b.subarray(f.remote_addr, f.remote_addr + 16)),
    remotePort: b.readUInt16LE(f.remote_port)
  }
}

export const probePortKeyCodec: Codec<ProbePortKey> = {
  size: L.ferry_probe_port_key.size,
  encode (k) {
    const b = Buffer.alloc(this.size)
    b.writeUInt32LE(k.slot, L.ferry_probe_port_key.fields.slot)
    b.writeUInt16LE(k.port, L.ferry_probe_port_key.fields.port)
    return b
  },
  decode: (b) => ({ slot: b.readUInt32LE(L.ferry_probe_port_key.fields.slot), port: b.readUInt16LE(L.ferry_probe_port_key.fields.port) })
}

/** Key of ferry_probe_conns. */
export const probeKeyCodec: Codec<ProbeKey> = {
  size: L.ferry_probe_key.size,
  encode (k) {
    const f = L.ferry_probe_key.fields
    const src = ipToBytes(k.srcAddress)
    const dst = ipToBytes(k.dstAddress)
    if (src.family !== dst.family) throw new RangeError(`ends of one connection in two families: ${k.srcAddress}, ${k.dstAddress}`)
    const b = Buffer.alloc(this.size)
    b.writeUInt8(src.family, f.family)
    b.writeUInt16LE(k.srcPort, f.src_port)
    b.writeUInt16LE(k.dstPort, f.dst_port)
    src.bytes.copy(b, f.src_addr)
    dst.bytes.copy(b, f.dst_addr)
    return b
  },
  decode (b) {
    const f = L.ferry_probe_key.fields
    const family = familyOf(b.readUInt8(f.family))
    return {
      srcAddress: bytesToIp(family, b.subarray(f.src_addr, f.src_addr + 16)),
      srcPort: b.readUInt16LE(f.src_port),
      dstAddress: bytesToIp(family, b.subarray(f.dst_addr, f.dst_addr + 16)),
      dstPort: b.readUInt16LE(f.dst_port)
    }
  }
}

export const probeConnCodec: Codec<ProbeConn> = {
  size: L.ferry_probe_conn.size,
  encode (v) {
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(v.connectedNs, L.ferry_probe_conn.fields.connected_ns)
    b.writeBigUInt64LE(v.sockCookie, L.ferry_probe_conn.fields.sock_cookie)
    return b
  },
  decode: (b) => ({ connectedNs: b.readBigUInt64LE(L.ferry_probe_conn.fields.connected_ns), sockCookie: b.readBigUInt64LE(L.ferry_probe_conn.fields.sock_cookie) })
}

export const probeStatsCodec: Codec<ProbeStats> = {
  size: L.ferry_probe_stats.size,
  encode (v) {
    const f = L.ferry_probe_stats.fields
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(v.admitted, f.admitted)
    b.writeBigUInt64LE(v.notProbePort, f.not_probe_port)
    b.writeBigUInt64LE(v.expired, f.expired)
    return b
  },
  decode (b) {
    const f = L.ferry_probe_stats.fields
    return { admitted: b.readBigUInt64LE(f.admitted), notProbePort: b.readBigUInt64LE(f.not_probe_port), expired: b.readBigUInt64LE(f.expired) }
  }
}

export const synStatsCodec: Codec<SynStats> = {
  size: L.ferry_syn_stats.size,
  encode (v) {
    const f = L.ferry_syn_stats.fields
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(v.admitted, f.admitted)
    b.writeBigUInt64LE(v.dropped, f.dropped)
    b.writeBigUInt64LE(v.untracked, f.untracked)
    b.writeBigUInt64LE(v.peer, f.peer)
    return b
  },
  decode (b) {
    const f = L.ferry_syn_stats.fields
    return { admitted: b.readBigUInt64LE(f.admitted), dropped: b.readBigUInt64LE(f.dropped), untracked: b.readBigUInt64LE(f.untracked), peer: b.readBigUInt64LE(f.peer) }
  }
}

/** Key of ferry_slots: a pod uid, NUL-padded (at most UID_LEN - 1 bytes). */
export const uidKeyCodec: Codec<string> = {
  size: L.ferry_uid_key.size,
  encode (uid) {
    const b = Buffer.alloc(this.size)
    b.write(uid, 0, this.size - 1, 'utf8')
    return b
  },
  decode (b) {
    const end = b.indexOf(0)
    return b.toString('utf8', 0, end < 0 ? b.length : end)
  }
}

/**
 * Value of ferry_workers and ferry_tunnel_workers: the live workers' ids, as a bitmask
 * (bit w = worker w). Ids must be integers in [0, MAX_WORKERS) (src/capture/workers.ts
 * checks them); decoding gives them back in ascending order.
 */
export const liveWorkersCodec: Codec<readonly number[]> = {
  size: 4,
  encode (ids) {
    let mask = 0
    for (const w of ids) {
      if (!Number.isInteger(w) || w < 0 || w >= MAX_WORKERS) throw new RangeError(`not a worker id: ${String(w)}`)
      mask |= 1 << w
    }
    const b = Buffer.alloc(4)
    b.writeUInt32LE(mask >>> 0)
    return b
  },
  decode (b) {
    const mask = b.readUInt32LE(0)
    const ids: number[] = []
    for (let w = 0; w < MAX_WORKERS; w++) if ((mask & (1 << w)) !== 0) ids.push(w)
    return ids
  }
}

export const u32Codec: Codec<number> = {
  size: 4,
  encode: (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b },
  decode: (b) => b.readUInt32LE(0)
}

export const u64Codec: Codec<bigint> = {
  size: 8,
  encode: (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b },
  decode: (b) => b.readBigUInt64LE(0)
}

export const u8Codec: Codec<number> = {
  size: 1,
  encode: (v) => Buffer.from([v]),
  decode: (b) => b.readUInt8(0)
}

function familyOf (n: number): 4 | 6 {
  return n === 6 ? 6 : 4
}

export const sockmapStatsCodec: Codec<SockmapStats> = {
  size: L.ferry_sockmap_stats.size,
  encode (v) {
    const f = L.ferry_sockmap_stats.fields
    const b = Buffer.alloc(this.size)
    b.writeBigUInt64LE(v.fromPodMsgs, f.from_pod_msgs)
    b.writeBigUInt64LE(v.fromPodBytes, f.from_pod_bytes)
    b.writeBigUInt64LE(v.toPodMsgs, f.to_pod_msgs)
    b.writeBigUInt64LE(v.toPodBytes, f.to_pod_bytes)
    b.writeBigUInt64LE(v.tcpMsgs, f.tcp_msgs)
    return b
  },
  decode (b) {
    const f = L.ferry_sockmap_stats.fields
    return {
      fromPodMsgs: b.readBigUInt64LE(f.from_pod_msgs),
      fromPodBytes: b.readBigUInt64LE(f.from_pod_bytes),
      toPodMsgs: b.readBigUInt64LE(f.to_pod_msgs),
      toPodBytes: b.readBigUInt64LE(f.to_pod_bytes),
      tcpMsgs: b.readBigUInt64LE(f.tcp_msgs)
    }
  }
}
