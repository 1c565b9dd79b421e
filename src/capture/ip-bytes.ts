import { isIP } from 'node:net'
import { ferryError } from '../errors'

// IP address strings <-> the 16-byte, network-order form the eBPF maps use (a v4
// address fills the first 4 bytes). Node has no inet_pton, so this is one.

export function ipToBytes (address: string): { family: 4 | 6, bytes: Buffer } {
  const family = isIP(address)
  if (family === 4) {
    const bytes = Buffer.alloc(16)
    address.split('.').forEach((part, i) => { bytes[i] = Number(part) })
    return { family: 4, bytes }
  }
  if (family === 6) return { family: 6, bytes: parseIPv6(address) }
  throw ferryError('FERRY_ERR_INVALID_ARG', `not an IP address: ${address}`)
}

export function bytesToIp (family: 4 | 6, bytes: Buffer): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  const words: number[] = []
  for (let i = 0; i < 16; i += 2) words.push(bytes.readUInt16BE(i))
  return formatIPv6(words)
}

function parseIPv6 (address: string): Buffer {
  let text = address.split('%')[0] ?? address
  const out = Buffer.alloc(16)
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex words.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (quad?.[1] !== undefined) {
    const b = quad[1].split('.').map(Number)
    text = text.slice(0, quad.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const headWords = head === '' ? [] : head.split(':')
  const tailWords = tail === undefined || tail === '' ? [] : tail.split(':')
  const words = [...headWords, ...new Array(8 - headWords.length - tailWords.length).fill('0'), ...tailWords]
  words.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2))
  return out
}

/** RFC 5952: lower case, longest run (>1) of zero words as ::, v4-mapped as dotted quad. */
function formatIPv6 (words: number[]): string {
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`
  }
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = words.map((w) => w.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}
