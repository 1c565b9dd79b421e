// A 32-bit string hash for consistent hashing: FNV-1a over the string's UTF-16 code
// units, then murmur3's finalizer so that strings differing in one character (endpoint
// ids, header values) land far apart on the ring. Reads the string in place: no
// allocation. Deterministic across processes and workers, so every worker of every node
// maps a key to the same endpoint.

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

export function hash32 (s: string): number {
  return finish(feed(FNV_OFFSET, s))
}

/** hash32(`${s}#${k}`) for a non-negative integer k, without building the string (the ring's points). */
export function hash32Point (s: string, k: number): number {
  let h = feed(FNV_OFFSET, s)
  h = Math.imul(h ^ 0x23, FNV_PRIME) // '#'
  let div = 1
  while (div * 10 <= k) div *= 10
  for (; div >= 1; div /= 10) {
    const digit = Math.floor(k / div) % 10
    h = Math.imul(h ^ (0x30 + digit), FNV_PRIME)
  }
  return finish(h)
}

function feed (h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME)
  return h
}

function finish (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
