import { isFerryError } from '../errors'
import { DIR_INBOUND, DIR_OUTBOUND, MAX_WORKERS, POD_F_FAIL_CLOSED, ipKeyCodec, type ExclKey } from './map-layout'
import type { CaptureMaps } from './maps'
import type { PodCaptureSpec } from './pod-spec'

// A pod's entries in the shared maps, all tied to its slot. An index by slot,
// built with one scan at open, keeps (re-)enrolling thousands of pods linear.
// Writes go listeners first, exclusions and probe ports next, then the lookups
// that turn capture on, so no moment has a half-enrolled pod dropping traffic.

interface SlotIndex { ips: Set<string>, cookies: Set<bigint>, excl: Map<string, ExclKey>, probePorts: Set<number> }

/** The pod's inbound listener of one worker and family in ferry_inbound (bpf/ferry_maps.h). */
export function sockmapIndex (slot: number, worker: number, family: 4 | 6): number {
  return (slot * MAX_WORKERS + worker) * 2 + (family === 6 ? 1 : 0)
}

const exclId = (k: ExclKey): string => `${k.dir}:${k.port}`

export class PodEntries {
  readonly #maps: CaptureMaps
  readonly #bySlot = new Map<number, SlotIndex>()

  constructor (maps: CaptureMaps) {
    this.#maps = maps
    for (const [ip, pod] of maps.podIps.entries()) this.index(pod.slot).ips.add(ip)
    for (const [cookie, pod] of maps.pods.entries()) this.index(pod.slot).cookies.add(cookie)
    for (const k of maps.excl.keys()) this.index(k.slot).excl.set(exclId(k), k)
    for (const k of maps.probePorts.keys()) this.index(k.slot).probePorts.add(k.port)
  }

  /** Brings the slot's entries to the spec: writes what it wants, deletes what it no longer does. */
  write (slot: number, spec: PodCaptureSpec): void {
    const maps = this.#maps
    const idx = this.index(slot)
    const pod = { slot, flags: spec.failClosed === false ? 0 : POD_F_FAIL_CLOSED }
    const listeners = spec.inboundListenerFds
    listeners.forEach((fds, worker) => {
      maps.inbound.set(sockmapIndex(slot, worker, 4), BigInt(fds.v4))
      maps.inbound.set(sockmapIndex(slot, worker, 6), BigInt(fds.v6))
    })
    const excl = new Map<string, ExclKey>()
    for (const port of spec.excludeOutboundPorts) excl.set(exclId({ slot, dir: DIR_OUTBOUND, port }), { slot, dir: DIR_OUTBOUND, port })
    for (const port of spec.excludeInboundPorts) excl.set(exclId({ slot, dir: DIR_INBOUND, port }), { slot, dir: DIR_INBOUND, port })
    for (const k of excl.values()) maps.excl.set(k, 1)
    const probePorts = new Set(spec.probePorts ?? [])
    for (const port of probePorts) maps.probePorts.set({ slot, port }, 1)
    const ips = new Set(spec.podIPs.map(canonicalIp))
    for (const ip of ips) maps.podIps.set(ip, pod)
    maps.pods.set(spec.netns.cookie, pod)

    // Fewer workers than before (a restarted agent): no listener of a gone worker stays.
    for (let worker = listeners.length; worker < MAX_WORKERS; worker++) this.deleteListeners(slot, worker)
    for (const [id, k] of idx.excl) if (!excl.has(id)) maps.excl.delete(k)
    for (const port of idx.probePorts) if (!probePorts.has(port)) maps.probePorts.delete({ slot, port })
    for (const ip of idx.ips) if (!ips.has(ip)) this.deleteIfOurs(maps.podIps, ip, slot)
    for (const c of idx.cookies) if (c !== spec.netns.cookie) this.deleteIfOurs(maps.pods, c, slot)
    this.#bySlot.set(slot, { ips, cookies: new Set([spec.netns.cookie]), excl, probePorts })
  }

  /** Zeroes the slot's probe counters: a slot given to a new pod starts its counts at 0. */
  resetCounters (slot: number): void {
    this.#maps.probeStats.set(slot, { admitted: 0n, notProbePort: 0n, expired: 0n })
  }

  /** Deletes every entry of the slot. */
  purge (slot: number): void {
    const idx = this.#bySlot.get(slot)
    if (idx !== undefined) {
      for (const ip of idx.ips) this.deleteIfOurs(this.#maps.podIps, ip, slot)
      for (const c of idx.cookies) this.deleteIfOurs(this.#maps.pods, c, slot)
      for (const k of idx.excl.values()) this.#maps.excl.delete(k)
      for (const port of idx.probePorts) this.#maps.probePorts.delete({ slot, port })
      this.#bySlot.delete(slot)
    }
    this.resetCounters(slot)
    for (let worker = 0; worker < MAX_WORKERS; worker++) this.deleteListeners(slot, worker)
  }

  /** Deletes entries whose slot belongs to no pod (left by a crash mid-unenroll). */
  purgeOrphans (liveSlots: Set<number>): void {
    for (const slot of [...this.#bySlot.keys()]) if (!liveSlots.has(slot)) this.purge(slot)
  }

  private index (slot: number): SlotIndex {
    let idx = this.#bySlot.get(slot)
    if (idx === undefined) {
      idx = { ips: new Set(), cookies: new Set(), excl: new Map(), probePorts: new Set() }
      this.#bySlot.set(slot, idx)
    }
    return idx
  }

  /** An address or netns may have moved to another pod since: leave that pod's entry alone. */
  private deleteIfOurs<K> (map: { get: (k: K) => { slot: number } | null, delete: (k: K) => boolean }, key: K, slot: number): void {
    if (map.get(key)?.slot === slot) map.delete(key)
  }

  /**
   * Both of a worker's listeners, where there are any (a lookup is cheaper than a failed
   * delete). A SOCKMAP reports an empty index as EINVAL, not ENOENT: both mean "nothing there".
   */
  private deleteListeners (slot: number, worker: number): void {
    for (const family of [4, 6] as const) {
      const index = sockmapIndex(slot, worker, family)
      if (this.#maps.inbound.get(index) === null) continue
      try {
        this.#maps.inbound.delete(index)
      } catch (err) {
        if (!isFerryError(err) || err.errno !== 'EINVAL') throw err
      }
    }
  }
}

/** The form ipKeyCodec.decode gives back, so sets compare equal. */
function canonicalIp (ip: string): string {
  return ipKeyCodec.decode(ipKeyCodec.encode(ip))
}
