// A fixed-size table of slots in shared memory, found by string key: the storage behind
// the node-wide limits (node-limits.ts). The main thread allocates the memory once;
// every data-path worker attaches a SharedTable to the same bytes, and two workers asking
// for the same key land on the same slot, so a limit kept in a slot is the node's.
//
// Layout: `slots` slots (a power of two) of HEADER_WORDS + payload Int32 words each
// (rounded up to an even count, so a payload word at an even index can be read as a
// BigInt64 by payload users that need 64-bit times):
//   [SEQ]  0: never used; odd: being written by one thread; even > 0: holds a key
//   [H1]   [H2]  two independent 32-bit hashes of the key (never both 0 for a key)
//   [USED] the last use, in seconds (wall clock, 32-bit, compared modulo 2^32)
//
// A key's slot is found by open addressing (linear probing from H1, at most MAX_PROBE
// slots). A missing key claims the first reclaimable slot on its chain (unused for
// `staleMs` and not busy by the payload's own test, e.g. a pool with requests in flight)
// or else the empty slot that ends the chain, with Atomics.compareExchange on SEQ; the
// sequence number changes at every claim, so a claim can never succeed on a slot another
// thread re-claimed meanwhile (no ABA), and a worker's cached slot of a key is checked
// with one load. Slots never become empty again (chains stay intact); a slot given up
// becomes a tombstone that the next claim on its chain may take.
//
// Two workers that claim the same new key at once on different slots of its chain (one
// took a slot that turned stale while the other was past it) both re-scan after
// publishing: the first slot of the chain holding the key wins and the other is given
// up, so they end on one slot.
//
// A full table (no slot on a key's chain holds it, is empty or reclaimable) answers -1:
// the caller degrades as its own file says (node-limits.ts lists what each limit does)
// and the miss is counted (`full()`).

export const HEADER_WORDS = 4
const SEQ = 0
const H1 = 1
const H2 = 2
const USED = 3
/** Slots a key may be looked for past its home slot. */
export const MAX_PROBE = 64
/** Slots unused this long may be taken by another key (default). */
export const STALE_MS = 10 * 60_000
/** Spins while another thread writes a slot (a few stores) before passing it by. */
const WRITE_SPINS = 10_000

export interface TableSpec {
  /** Rounded up to a power of two. */
  readonly slots: number
  /** Int32 words of each slot's payload. */
  readonly payloadWords: number
}

/** Whether the payload at word `base` is busy (never reclaimed, however old). */
export type BusyTest = (words: Int32Array, base: number, nowMs: number) => boolean

export class SharedTable {
  readonly slots: number
  readonly slotWords: number
  readonly words: Int32Array
  private readonly cache = new Map<string, { slot: number, seq: number }>()
  private misses = 0

  /** Bytes of a table of `spec` (a multiple of 8). */
  static bytesFor (spec: TableSpec): number {
    return roundSlots(spec.slots) * slotWordsOf(spec.payloadWords) * 4
  }

  /**
   * The table in `buffer` from `byteOffset` (8-aligned; zero until the first claim).
   * Every thread attaching to the same bytes must pass the same spec.
   */
  constructor (buffer: SharedArrayBuffer, byteOffset: number, spec: TableSpec, private readonly busy: BusyTest = () => false, private readonly staleMs = STALE_MS) {
    this.slots = roundSlots(spec.slots)
    this.slotWords = slotWordsOf(spec.payloadWords)
    this.words = new Int32Array(buffer, byteOffset, this.slots * this.slotWords)
  }

  /**
   * The word index of `key`'s payload (claimed, zeroed, if the key had no slot), or -1
   * when the table is full for it. Marks the slot used at `nowMs`.
   */
  find (key: string, nowMs: number): number {
    const w = this.words
    const cached = this.cache.get(key)
    if (cached !== undefined) {
      const b = cached.slot * this.slotWords
      if (Atomics.load(w, b + SEQ) === cached.seq) {
        touch(w, b, nowMs)
        return b + HEADER_WORDS
      }
      this.cache.delete(key)
    }
    const h1 = hash1(key)
    const h2 = hash2(key)
    for (let attempt = 0; attempt < 8; attempt++) {
      const found = this.scan(h1, h2, nowMs)
      if (found.slot >= 0 && found.own) return this.remember(key, found.slot)
      if (found.slot < 0) break
      // Claim the candidate; a failed exchange means another thread took it: look again.
      const b = found.slot * this.slotWords
      if (Atomics.compareExchange(w, b + SEQ, found.seq, found.seq + 1) !== found.seq) continue
      for (let i = HEADER_WORDS; i < this.slotWords; i++) Atomics.store(w, b + i, 0)
      Atomics.store(w, b + H1, h1)
      Atomics.store(w, b + H2, h2)
      Atomics.store(w, b + USED, seconds(nowMs))
      Atomics.store(w, b + SEQ, found.seq + 2)
      // Another thread may have claimed the same key elsewhere on the chain meanwhile: the first wins.
      const first = this.scan(h1, h2, nowMs)
      if (first.own && first.slot !== found.slot) {
        this.giveUp(found.slot)
        return this.remember(key, first.slot)
      }
      return this.remember(key, found.slot)
    }
    this.misses++
    return -1
  }

  /** Lookups that found no slot (the table was full for their key). */
  full (): number { return this.misses }

  /** Slots holding a key (for diagnostics: walks the table). */
  used (): number {
    let n = 0
    for (let s = 0; s < this.slots; s++) {
      const b = s * this.slotWords
      const seq = Atomics.load(this.words, b + SEQ)
      if (seq !== 0 && (seq & 1) === 0 && (Atomics.load(this.words, b + H1) | Atomics.load(this.words, b + H2)) !== 0) n++
    }
    return n
  }

  /**
   * Walks `key`'s chain: its slot (own), or the slot it may claim (the first reclaimable
   * one, else the empty one ending the chain) with the sequence number seen; slot -1: full.
   */
  private scan (h1: number, h2: number, nowMs: number): { slot: number, seq: number, own: boolean } {
    const w = this.words
    const mask = this.slots - 1
    const limit = Math.min(MAX_PROBE, this.slots)
    let candidate = -1
    let candidateSeq = 0
    for (let i = 0; i < limit; i++) {
      const s = (h1 + i) & mask
      const b = s * this.slotWords
      let seq = Atomics.load(w, b + SEQ)
      for (let spin = 0; (seq & 1) === 1 && spin < WRITE_SPINS; spin++) seq = Atomics.load(w, b + SEQ)
      // Still being written (its writer was stopped mid-claim): pass it by.
      if ((seq & 1) === 1) continue
      if (seq === 0) {
        if (candidate < 0) { candidate = s; candidateSeq = 0 }
        break
      }
      if (Atomics.load(w, b + H1) === h1 && Atomics.load(w, b + H2) === h2) {
        touch(w, b, nowMs)
        return { slot: s, seq, own: true }
      }
      if (candidate < 0 && this.reclaimable(b, nowMs)) { candidate = s; candidateSeq = seq }
    }
    return { slot: candidate, seq: candidateSeq, own: false }
  }

  private reclaimable (b: number, nowMs: number): boolean {
    const w = this.words
    const tombstone = (Atomics.load(w, b + H1) | Atomics.load(w, b + H2)) === 0
    if (tombstone) return true
    const idleMs = ((seconds(nowMs) - Atomics.load(w, b + USED)) | 0) * 1000
    return idleMs >= this.staleMs && !this.busy(w, b + HEADER_WORDS, nowMs)
  }

  /** A slot claimed twice for one key: the later one becomes a tombstone. */
  private giveUp (slot: number): void {
    const b = slot * this.slotWords
    const seq = Atomics.load(this.words, b + SEQ)
    if (Atomics.compareExchange(this.words, b + SEQ, seq, seq + 1) !== seq) return
    Atomics.store(this.words, b + H1, 0)
    Atomics.store(this.words, b + H2, 0)
    Atomics.store(this.words, b + SEQ, seq + 2)
  }

  private remember (key: string, slot: number): number {
    const b = slot * this.slotWords
    // Bounded: a worker's cache never outgrows the table it mirrors.
    if (this.cache.size >= this.slots * 2) this.cache.clear()
    this.cache.set(key, { slot, seq: Atomics.load(this.words, b + SEQ) })
    return b + HEADER_WORDS
  }
}

function touch (w: Int32Array, b: number, nowMs: number): void {
  const s = seconds(nowMs)
  // A load first: most uses fall in the same second, and a store would bounce the cache line between cores.
  if (Atomics.load(w, b + USED) !== s) Atomics.store(w, b + USED, s)
}

function seconds (nowMs: number): number { return Math.floor(nowMs / 1000) | 0 }

function roundSlots (n: number): number {
  let s = 1
  while (s < n) s *= 2
  return s
}

function slotWordsOf (payloadWords: number): number {
  const n = HEADER_WORDS + payloadWords
  return n + (n & 1)
}

/** FNV-1a, 32 bits; never 0. */
export function hash1 (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h === 0 ? 1 : h
}

/** A second, independent 32-bit hash (djb2 with a murmur3 finalizer); never 0. */
export function hash2 (key: string): number {
  let h = 5381
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 33) + key.charCodeAt(i)) | 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h === 0 ? 1 : h
}
