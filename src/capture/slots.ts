import { ferryError } from '../errors'
import type { BpfMap } from '../native'

// Pod uid -> slot, persisted in the pinned map ferry_slots so a restarted agent
// gives every pod the slot its map entries (and sockmap indices) already use.

export class SlotTable {
  readonly #map: BpfMap<string, number>
  readonly #capacity: number
  readonly #byUid = new Map<string, number>()

  constructor (map: BpfMap<string, number>, capacity: number) {
    this.#map = map
    this.#capacity = capacity
    for (const [uid, slot] of map.entries()) this.#byUid.set(uid, slot)
  }

  get (uid: string): number | undefined { return this.#byUid.get(uid) }
  uids (): string[] { return [...this.#byUid.keys()].sort() }
  slots (): Set<number> { return new Set(this.#byUid.values()) }

  /** The uid's slot, allocating the lowest free one the first time. */
  acquire (uid: string): number {
    const known = this.#byUid.get(uid)
    if (known !== undefined) return known
    const used = this.slots()
    let slot = 0
    while (used.has(slot)) slot++
    if (slot >= this.#capacity) throw ferryError('FERRY_ERR_ENROLL', `no free capture slot for pod ${uid} (${this.#capacity} pods enrolled)`)
    this.#map.set(uid, slot)
    this.#byUid.set(uid, slot)
    return slot
  }

  release (uid: string): void {
    this.#map.delete(uid)
    this.#byUid.delete(uid)
  }
}
