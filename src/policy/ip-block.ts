// IP addresses and CIDR blocks as numbers, for `ipBlocks` matching on the data path.
// Node's net.BlockList costs microseconds per check (it builds a SocketAddress each
// time); parsing the peer address once into 32-bit words and comparing under a mask
// costs tens of nanoseconds. Inputs to parseBlock are validated by the schema first.

/** An address: one word for IPv4, four for IPv6. v4-mapped IPv6 (::ffff:a.b.c.d) is IPv4. */
export type IPWords = readonly number[]

export interface IPBlock {
  /** As written in the policy. */
  readonly text: string
  readonly words: IPWords
  readonly prefix: number
}

export function parseIP (text: string): IPWords | null {
  if (!text.includes(':')) return parseIPv4(text)
  const w = parseIPv6(text)
  if (w === null) return null
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff ? [w[3]] : w
}

/** "10.0.0.0/8", "192.168.1.7", "fd00::/64" (host bits may be set, as Istio allows). */
export function parseBlock (text: string): IPBlock | null {
  const slash = text.indexOf('/')
  const address = slash < 0 ? text : text.slice(0, slash)
  // Not parseIP: a block written as ::ffff:10.0.0.0/104 stays an IPv6 block.
  const words = address.includes(':') ? parseIPv6(address) : parseIPv4(address)
  if (words === null) return null
  const max = words.length * 32
  const prefix = slash < 0 ? max : Number(text.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null
  return { text, words, prefix }
}

export function blockContains (block: IPBlock, ip: IPWords): boolean {
  if (block.words.length !== ip.length) return false
  let bits = block.prefix
  for (let i = 0; i < ip.length && bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0
    if ((((ip[i] ^ block.words[i]) & mask) >>> 0) !== 0) return false
  }
  return true
}

function parseIPv4 (s: string): number[] | null {
  // By hand, not split/regex: this runs once per connection when a policy has ipBlocks.
  let n = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) { // "."
      if (digits === 0 || ++dots > 3) return null
      n = n * 256 + part
      part = 0
      digits = 0
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48)
      digits++
      if (part > 255) return null
    } else {
      return null
    }
  }
  if (digits === 0 || dots !== 3) return null
  return [n * 256 + part]
}

function parseIPv6 (input: string): number[] | null {
  let s = input
  const zone = s.indexOf('%')
  if (zone >= 0) s = s.slice(0, zone)
  let v4: number | null = null
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.', lastColon)) {
    const tail = parseIPv4(s.slice(lastColon + 1))
    if (tail === null) return null
    v4 = tail[0]
    s = `${s.slice(0, lastColon + 1)}0:0`
  }
  const gap = s.indexOf('::')
  let groups: string[]
  if (gap < 0) {
    groups = s.split(':')
  } else {
    if (s.includes('::', gap + 1)) return null
    const head = s.slice(0, gap) === '' ? [] : s.slice(0, gap).split(':')
    const tail = s.slice(gap + 2) === '' ? [] : s.slice(gap + 2).split(':')
    if (head.length + tail.length > 7) return null
    groups = [...head, ...new Array<string>(8 - head.length - tail.length).fill('0'), ...tail]
  }
  if (groups.length !== 8) return null
  const g: number[] = []
  for (const x of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(x)) return null
    g.push(parseInt(x, 16))
  }
  const words = [0, 1, 2, 3].map((i) => (g[2 * i] * 0x10000 + g[2 * i + 1]))
  if (v4 !== null) words[3] = v4
  return words
}
