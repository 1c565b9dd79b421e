import { randomInt } from 'node:crypto'
import { ferryError } from '../errors'
import { RateBuckets } from '../util/rate-buckets'
import { TUNNEL_DEFAULTS } from './defaults'

// Who may start a TLS handshake on the tunnel port, decided at accept, before any TLS
// work (accept-gate.ts asks):
//
//   pending      connections accepted and not yet verified (TCP accepted, TLS not
//                finished, or finished and not yet checked), node-wide, at most `pendingMax`
//   per source   handshakes per second per source address: a token bucket (rate-buckets.ts)
//                in a fixed table of `tableSize` buckets, found by a keyed hash of the
//                address (IPv4, or the /64 prefix of an IPv6 address: one host usually
//                holds a whole /64). Memory is fixed, O(1) per connection, nothing to
//                expire. Two sources that hash to one bucket share its rate; the hash key
//                is random per node, so an attacker cannot aim at a peer's bucket
//
// The whole state is one SharedArrayBuffer, updated with Atomics: the agent creates it
// once (TunnelAdmission.create) and every tunnel server of the node — one per data-path
// worker thread, each with its own 15008 listener — attaches to the same buffer
// (TunnelAdmission.attach), so the limits hold for the node, not per worker. The limits
// themselves are written into the buffer, so every thread enforces the same ones.

export interface AdmissionLimits {
  /** Unverified connections node-wide. */
  readonly pendingMax: number
  /** Handshakes per second per source (average). */
  readonly perSourcePerSecond: number
  /** Handshakes per source at once. */
  readonly perSourceBurst: number
  /** Buckets in the per-source table (a power of two). */
  readonly tableSize: number
}

export type AdmissionRefusal = 'pending-limit' | 'rate-limit'

const MAGIC = 0x46544e41 // "FTNA"
const HEADER = 8
const H_MAGIC = 0
const H_PENDING_MAX = 1
const H_RATE = 2
const H_BURST = 3
const H_SEED = 4
const H_PENDING = 5
const H_TABLE = 6

export class TunnelAdmission {
  readonly limits: AdmissionLimits
  private readonly view: Int32Array
  private readonly buckets: RateBuckets
  private readonly seed: number

  private constructor (readonly buffer: SharedArrayBuffer) {
    this.view = new Int32Array(buffer)
    if (this.view.length < HEADER || this.view[H_MAGIC] !== MAGIC) throw ferryError('FERRY_ERR_INVALID_ARG', 'not a tunnel admission buffer')
    this.limits = Object.freeze({
      pendingMax: this.view[H_PENDING_MAX],
      perSourcePerSecond: this.view[H_RATE],
      perSourceBurst: this.view[H_BURST],
      tableSize: this.view[H_TABLE]
    })
    this.seed = this.view[H_SEED] >>> 0
    this.buckets = new RateBuckets(this.view, HEADER, this.limits.tableSize, { perSecond: this.limits.perSourcePerSecond, burst: this.limits.perSourceBurst })
  }

  /** New shared state with these limits (defaults: TUNNEL_DEFAULTS). */
  static create (limits: Partial<AdmissionLimits> = {}): TunnelAdmission {
    const l: AdmissionLimits = {
      pendingMax: limits.pendingMax ?? TUNNEL_DEFAULTS.pendingHandshakesMax,
      perSourcePerSecond: limits.perSourcePerSecond ?? TUNNEL_DEFAULTS.handshakesPerSourcePerSecond,
      perSourceBurst: limits.perSourceBurst ?? TUNNEL_DEFAULTS.handshakesPerSourceBurst,
      tableSize: limits.tableSize ?? TUNNEL_DEFAULTS.sourceTableSize
    }
    checkLimit('pendingMax', l.pendingMax, 1, 1 << 20)
    checkLimit('perSourcePerSecond', l.perSourcePerSecond, 1, 1000)
    checkLimit('perSourceBurst', l.perSourceBurst, 1, 1 << 16)
    checkLimit('tableSize', l.tableSize, 1, 1 << 20)
    if ((l.tableSize & (l.tableSize - 1)) !== 0) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel admission: tableSize ${l.tableSize} is not a power of two`)
    const buffer = new SharedArrayBuffer((HEADER + l.tableSize) * 4)
    const view = new Int32Array(buffer)
    view[H_PENDING_MAX] = l.pendingMax
    view[H_RATE] = l.perSourcePerSecond
    view[H_BURST] = l.perSourceBurst
    view[H_SEED] = randomInt(0, 2 ** 31)
    view[H_TABLE] = l.tableSize
    Atomics.store(view, H_MAGIC, MAGIC)
    return new TunnelAdmission(buffer)
  }

  /** The same state, from another thread (the buffer came through postMessage or workerData). */
  static attach (buffer: SharedArrayBuffer): TunnelAdmission {
    return new TunnelAdmission(buffer)
  }

  /**
   * A connection from `address` was accepted: null if it may go on (it then holds a
   * pending slot until release()), or why not. Two atomic operations and a hash.
   */
  admit (address: string, nowMs: number): AdmissionRefusal | null {
    if (Atomics.add(this.view, H_PENDING, 1) >= this.limits.pendingMax) {
      Atomics.sub(this.view, H_PENDING, 1)
      return 'pending-limit'
    }
    if (!this.buckets.take(sourceHash(address, this.seed) & (this.limits.tableSize - 1), nowMs)) {
      Atomics.sub(this.view, H_PENDING, 1)
      return 'rate-limit'
    }
    return null
  }

  /** An admitted connection was verified or closed. */
  release (): void {
    Atomics.sub(this.view, H_PENDING, 1)
  }

  /** Unverified connections node-wide now. */
  pending (): number {
    return Atomics.load(this.view, H_PENDING)
  }
}

function checkLimit (name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel admission: ${name} is ${String(value)}: expected an integer from ${min} to ${max}`)
  }
}

/**
 * FNV-1a over the source's key, seeded: the IPv4 address (also of an IPv4-mapped IPv6
 * address, as a dual-stack listener reports IPv4 peers), or the first four groups (the
 * /64) of an IPv6 address. No allocation for IPv4.
 */
export function sourceHash (address: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  let end = address.length
  let start = 0
  if (address.includes('.')) {
    start = address.lastIndexOf(':') + 1
  } else {
    const zone = address.indexOf('%')
    if (zone >= 0) end = zone
    const prefix = ipv6Prefix64(address.slice(0, end))
    for (let i = 0; i < prefix.length; i++) h = Math.imul(h ^ prefix.charCodeAt(i), 0x01000193)
    return h >>> 0
  }
  for (let i = start; i < end; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** "fd00:1:2:3::5" → "fd00:1:2:3", "fd00::5" → "fd00:0:0:0" (Node prints addresses compressed, lowercase). */
function ipv6Prefix64 (a: string): string {
  const gap = a.indexOf('::')
  const head = (gap < 0 ? a : a.slice(0, gap)).split(':').filter((g) => g !== '')
  if (gap >= 0) {
    const tail = a.slice(gap + 2).split(':').filter((g) => g !== '')
    while (head.length + tail.length < 8) head.push('0')
    head.push(...tail)
  }
  return head.slice(0, 4).join(':')
}
