import { closeSync, readlinkSync } from 'node:fs'
import { ferryError } from '../errors'
import { native } from './binding'
import type { NativeMapInfo } from './native'

// A typed view of one eBPF map: keys and values go through codecs whose sizes are
// checked against the kernel's map at open, so a layout drift fails loudly.

export interface Codec<T> {
  readonly size: number
  encode (value: T): Buffer
  decode (bytes: Buffer): T
}

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST */
export const UPDATE_FLAGS = Object.freeze({ any: 0, noexist: 1, exist: 2 })
export type UpdateMode = keyof typeof UPDATE_FLAGS

export class BpfMap<K, V> {
  readonly info: NativeMapInfo
  readonly #key: Codec<K>
  readonly #value: Codec<V>
  #fd: number

  /** Takes ownership of `fd`. */
  constructor (fd: number, key: Codec<K>, value: Codec<V>) {
    this.#fd = fd
    this.#key = key
    this.#value = value
    this.info = native().mapInfo(fd)
    if (this.info.keySize !== key.size || this.info.valueSize !== value.size) {
      closeSync(fd)
      throw ferryError('FERRY_ERR_BPF_MAP', `map ${this.info.name}: kernel sizes key ${this.info.keySize}/value ${this.info.valueSize}, codecs ${key.size}/${value.size}`)
    }
  }

  static openPinned<K, V> (path: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    return new BpfMap(native().mapOpenPinned(path), key, value)
  }

  /**
   * A pinned map of any layout, keys and values as their bytes (for tools that count or
   * dump entries). FERRY_ERR_BPF_MAP when the pin is another object (a link: the kernel
   * opens any pin, and describes it as a map all the same).
   */
  static openPinnedBytes (path: string): BpfMap<Buffer, Buffer> {
    const fd = native().mapOpenPinned(path)
    let info: NativeMapInfo
    try {
      const kind = readlinkSync(`/proc/self/fd/${fd}`)
      if (kind !== 'anon_inode:bpf-map') throw ferryError('FERRY_ERR_BPF_MAP', `${path} is no map (${kind})`)
      info = native().mapInfo(fd)
    } catch (err) {
      closeSync(fd)
      throw err
    }
    return new BpfMap(fd, bytesCodec(info.keySize), bytesCodec(info.valueSize))
  }

  get fd (): number { return this.#fd }

  get (key: K): V | null {
    const bytes = native().mapLookup(this.live(), this.#key.encode(key), this.#value.size)
    return bytes === null ? null : this.#value.decode(bytes)
  }

  set (key: K, value: V, mode: UpdateMode = 'any'): void {
    native().mapUpdate(this.live(), this.#key.encode(key), this.#value.encode(value), UPDATE_FLAGS[mode])
  }

  /** Returns false if the key was absent. */
  delete (key: K): boolean {
    return native().mapDelete(this.live(), this.#key.encode(key))
  }

  /** Atomic lookup and delete (hash maps). */
  take (key: K): V | null {
    const bytes = native().mapLookupAndDelete(this.live(), this.#key.encode(key), this.#value.size)
    return bytes === null ? null : this.#value.decode(bytes)
  }

  /** A snapshot of the keys; safe to delete while iterating the result. */
  keys (): K[] {
    const out: K[] = []
    const fd = this.live()
    for (let k = native().mapNextKey(fd, null, this.#key.size); k !== null; k = native().mapNextKey(fd, k, this.#key.size)) {
      out.push(this.#key.decode(k))
    }
    return out
  }

  /** A snapshot of the entries (keys deleted meanwhile are skipped). */
  entries (): Array<[K, V]> {
    const out: Array<[K, V]> = []
    for (const k of this.keys()) {
      const v = this.get(k)
      if (v !== null) out.push([k, v])
    }
    return out
  }

  close (): void {
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = -1
  }

  private live (): number {
    if (this.#fd < 0) throw ferryError('FERRY_ERR_BPF_MAP', `map ${this.info.name} is closed`)
    return this.#fd
  }
}

/** Bytes as they are, checked for size. */
function bytesCodec (size: number): Codec<Buffer> {
  return {
    size,
    encode: (b) => {
      if (b.length !== size) throw ferryError('FERRY_ERR_BPF_MAP', `expected ${size} bytes, got ${b.length}`)
      return b
    },
    decode: (b) => Buffer.from(b)
  }
}
