// A reader of BTF (the kernel's type information, include/uapi/linux/btf.h): enough to
// answer "does struct S have a member at path a.b, and does function F exist" for the
// running kernel (/sys/kernel/btf/vmlinux) before a program that reads those fields is
// attached. Read-only, no libbpf: the format is a stable kernel ABI.

const BTF_MAGIC = 0xeb9f
const HEADER_MIN = 24
const TYPE_HEADER = 12

const KIND = Object.freeze({
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11,
  FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19
})

/** Bytes that follow a type's 12-byte header, by kind; vlen is the info word's low 16 bits. */
function trailer (kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: return 4
    case KIND.ARRAY: return 12
    case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: return 12 * vlen
    case KIND.ENUM: case KIND.FUNC_PROTO: return 8 * vlen
    case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
    case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: return 0
    default: throw new RangeError(`BTF: unknown kind ${kind}`)
  }
}

interface Member { name: string, type: number }

/**
 * Types are indexed once (offsets only); names are decoded on demand, so checking a few
 * structs of the kernel's ~150,000 types costs a scan, not a full decode.
 */
export class Btf {
  readonly #blob: Buffer
  readonly #strOff: number
  readonly #strEnd: number
  /** Byte offset of each type's header, by type id (id 0 is void: unused). */
  readonly #at: Uint32Array

  /** Parses a BTF blob; throws RangeError when it is not one. */
  constructor (blob: Buffer) {
    if (blob.length < HEADER_MIN || blob.readUInt16LE(0) !== BTF_MAGIC) throw new RangeError('BTF: bad magic (not little-endian BTF)')
    const hdrLen = blob.readUInt32LE(4)
    const typeOff = hdrLen + blob.readUInt32LE(8)
    const typeEnd = typeOff + blob.readUInt32LE(12)
    this.#strOff = hdrLen + blob.readUInt32LE(16)
    this.#strEnd = this.#strOff + blob.readUInt32LE(20)
    if (typeEnd > blob.length || this.#strEnd > blob.length) throw new RangeError('BTF: sections run past the end')
    this.#blob = blob
    const at: number[] = [0]
    for (let off = typeOff; off < typeEnd;) {
      at.push(off)
      const info = blob.readUInt32LE(off + 4)
      off += TYPE_HEADER + trailer((info >>> 24) & 0x1f, info & 0xffff)
    }
    this.#at = Uint32Array.from(at)
  }

  hasStruct (name: string): boolean { return this.find(KIND.STRUCT, name) !== undefined }

  hasFunc (name: string): boolean { return this.find(KIND.FUNC, name) !== undefined }

  /**
   * Whether struct `struct` has the member path `path` (dot-separated, each step into
   * the previous member's struct or union type); members of anonymous structs and
   * unions count as the outer struct's, as in C.
   */
  hasMember (struct: string, path: string): boolean {
    let id = this.find(KIND.STRUCT, struct)
    for (const name of path.split('.')) {
      if (id === undefined) return false
      const m = this.member(id, name)
      if (m === undefined) return false
      id = this.composite(m.type)
    }
    return true
  }

  /** Names of every named struct, in type order. */
  structNames (): string[] {
    const out: string[] = []
    for (let id = 1; id < this.#at.length; id++) {
      if (this.kind(id) !== KIND.STRUCT) continue
      const name = this.str(this.#blob.readUInt32LE(this.#at[id]))
      if (name !== '') out.push(name)
    }
    return out
  }

  /** The member names of struct `struct` (anonymous ones as ''), or undefined if there is no such struct. */
  memberNames (struct: string): string[] | undefined {
    const id = this.find(KIND.STRUCT, struct)
    return id === undefined ? undefined : this.members(id).map((m) => m.name)
  }

  private kind (id: number): number { return (this.#blob.readUInt32LE(this.#at[id] + 4) >>> 24) & 0x1f }

  private str (off: number): string {
    const start = this.#strOff + off
    const end = this.#blob.indexOf(0, start)
    return start >= this.#strEnd || end < 0 ? '' : this.#blob.toString('latin1', start, end)
  }

  /** The first type of `kind` named `name`. */
  private find (kind: number, name: string): number | undefined {
    const want = Buffer.from(`${name}\0`, 'latin1')
    const b = this.#blob
    for (let id = 1; id < this.#at.length; id++) {
      if (this.kind(id) !== kind) continue
      const s = this.#strOff + b.readUInt32LE(this.#at[id])
      if (s + want.length <= this.#strEnd && b.compare(want, 0, want.length, s, s + want.length) === 0) return id
    }
    return undefined
  }

  private members (id: number): Member[] {
    const kind = this.kind(id)
    if (kind !== KIND.STRUCT && kind !== KIND.UNION) return []
    const at = this.#at[id]
    const vlen = this.#blob.readUInt32LE(at + 4) & 0xffff
    const out: Member[] = []
    for (let i = 0; i < vlen; i++) {
      const m = at + TYPE_HEADER + 12 * i
      out.push({ name: this.str(this.#blob.readUInt32LE(m)), type: this.#blob.readUInt32LE(m + 4) })
    }
    return out
  }

  /** The member `name` of the struct or union `id`, looking into anonymous members. */
  private member (id: number, name: string): Member | undefined {
    for (const m of this.members(id)) {
      if (m.name === name) return m
      if (m.name === '') {
        const inner = this.composite(m.type)
        const found = inner === undefined ? undefined : this.member(inner, name)
        if (found !== undefined) return found
      }
    }
    return undefined
  }

  /** The struct or union behind `id` once typedefs and qualifiers are skipped, if any. */
  private composite (id: number): number | undefined {
    for (let hops = 0; hops < 32 && id > 0 && id < this.#at.length; hops++) {
      const kind = this.kind(id)
      if (kind === KIND.STRUCT || kind === KIND.UNION) return id
      if (kind !== KIND.TYPEDEF && kind !== KIND.VOLATILE && kind !== KIND.CONST && kind !== KIND.RESTRICT && kind !== KIND.TYPE_TAG) return undefined
      id = this.#blob.readUInt32LE(this.#at[id] + 8)
    }
    return undefined
  }
}
