import type { FieldPath } from '../resources/issues'
import { formatPath } from '../resources/issues'
import { blockContains, type IPBlock, type IPWords, parseBlock, parseIP } from './ip-block'
import type { AuthzSource } from './model'
import type { RequestView } from './request-view'

// The conditions of a rule, compiled once per snapshot. Each answers two questions:
// `test` (hot path: a boolean, no allocation) and `explain` (for `ferry policy check`:
// which value matched, or why none did). Matching follows Istio:
//
// - principals and namespaces: exact, "prefix*", "*suffix", or "*" (any value present);
//   principals are written without "spiffe://" (a written "spiffe://" is dropped too).
// - ipBlocks: the peer address in any block (IPv4 and IPv6 kept apart).
// - ports: the destination port.
// - a not… form holds when the value matches none of its entries — including when the
//   source has no such value (a plaintext peer has no principal), as in Istio.
//
// L7 conditions (methods, paths, hosts, `when` on request headers: request-match.ts)
// read the HTTP request from the Attributes; without one (a connection that is not
// HTTP) they are not evaluated, and compile.ts applies Istio's rule to their rule.

const SPIFFE = 'spiffe://'

/** A request's source, normalized once per evaluation. */
export class SourceView {
  readonly principal: string | null
  readonly ip: string | null
  private ns: string | null | undefined
  private words: IPWords | null | undefined = undefined

  constructor (s: AuthzSource) {
    let p = s.principal ?? null
    if (p !== null && p.startsWith(SPIFFE)) p = p.slice(SPIFFE.length)
    this.principal = p === '' ? null : p
    this.ns = s.namespace ?? undefined
    this.ip = s.ip ?? null
  }

  /** The given namespace, else the one in the principal (found on first use). */
  get namespace (): string | null {
    if (this.ns === undefined) this.ns = this.principal === null ? null : namespaceOfPrincipal(this.principal)
    return this.ns
  }

  /** The peer address as words, parsed on first use (null: absent or not an address). */
  ipWords (): IPWords | null {
    if (this.words === undefined) this.words = this.ip === null ? null : parseIP(this.ip)
    return this.words
  }
}

/** What an evaluation knows besides the source: the destination address and, for L7, the request. */
export class Attributes {
  readonly destinationIp: string | null
  readonly request: RequestView | null
  private words: IPWords | null | undefined = undefined
  private path: string | undefined = undefined

  constructor (destinationIp: string | null, request: RequestView | null) {
    this.destinationIp = destinationIp === '' ? null : destinationIp
    this.request = request
  }

  /** The destination address as words, parsed on first use. */
  destinationWords (): IPWords | null {
    if (this.words === undefined) this.words = this.destinationIp === null ? null : parseIP(this.destinationIp)
    return this.words
  }

  /** The request's path without a query string or fragment (what `paths` match, as Istio's url_path). */
  requestPath (): string | null {
    if (this.request === null) return null
    if (this.path === undefined) {
      const p = this.request.path
      let end = p.indexOf('?')
      const hash = p.indexOf('#')
      if (hash >= 0 && (end < 0 || hash < end)) end = hash
      this.path = end < 0 ? p : p.slice(0, end)
    }
    return this.path
  }
}

/** No destination address, no request: a connection evaluated by what its source is. */
export const NO_ATTRIBUTES = new Attributes(null, null)

/** "td/ns/<ns>/sa/<sa>" → "<ns>" (null when the principal is not of that shape). */
export function namespaceOfPrincipal (principal: string): string | null {
  const at = principal.indexOf('/ns/')
  if (at < 0) return null
  const end = principal.indexOf('/', at + 4)
  return end < 0 ? null : principal.slice(at + 4, end)
}

export interface ConditionResult {
  readonly matched: boolean
  /** An L7 condition on a connection without a request: its rule decides by Istio's rule (compile.ts). */
  readonly notEvaluated?: true
  /** The entry that matched (of the values, for a positive field; the excluding one for a not… field). */
  readonly index?: number
  readonly detail: string
}

export interface Condition {
  /** e.g. "spec.rules[0].from[0].source.namespaces" */
  readonly field: string
  readonly path: FieldPath
  readonly values: readonly string[]
  /** Reads the HTTP request (methods, paths, hosts, request.headers): not evaluable without one. */
  readonly l7: boolean
  /** Reads only the destination port (ports, notPorts, destination.port). */
  readonly portOnly: boolean
  test: (src: SourceView, port: number, at: Attributes) => boolean
  explain: (src: SourceView, port: number, at: Attributes) => ConditionResult
}

type SourceField = 'principals' | 'notPrincipals' | 'namespaces' | 'notNamespaces' | 'ipBlocks' | 'notIpBlocks'
type OperationField = 'ports' | 'notPorts'

/** One condition of `from[].source`. */
export function sourceCondition (name: SourceField, values: readonly string[], path: FieldPath): Condition {
  switch (name) {
    case 'principals':
    case 'notPrincipals':
      return stringCondition(name, values.map((v) => v.startsWith(SPIFFE) ? v.slice(SPIFFE.length) : v), values, path, 'principal', (s) => s.principal)
    case 'namespaces':
    case 'notNamespaces':
      return stringCondition(name, values, values, path, 'namespace', (s) => s.namespace)
    case 'ipBlocks':
    case 'notIpBlocks':
      return ipCondition(name, values, path)
  }
}

/** One condition of `to[].operation`. */
export function operationCondition (name: OperationField, ports: readonly number[], path: FieldPath): Condition {
  const set = new Set(ports)
  const negate = name === 'notPorts'
  const values = ports.map(String)
  const indexOf = (port: number): number => set.has(port) ? ports.indexOf(port) : -1
  return finish(name, negate, values, path, {
    portOnly: true,
    test: (_s, port) => set.has(port) !== negate,
    indexOf: (_s, port) => indexOf(port),
    subject: (_s, port) => `destination port ${port}`
  })
}

export function stringCondition (name: string, patterns: readonly string[], written: readonly string[], path: FieldPath, noun: string, get: (s: SourceView) => string | null): Condition {
  const match = compileMatch(patterns)
  const negate = name.startsWith('not')
  return finish(name, negate, written, path, {
    test: (s) => (match(get(s)) >= 0) !== negate,
    indexOf: (s) => match(get(s)),
    subject: (s) => { const v = get(s); return v === null ? null : `source ${noun} ${JSON.stringify(v)}` },
    absent: `the source has no ${noun} (a plaintext peer has no identity)`
  })
}

function ipCondition (name: SourceField, written: readonly string[], path: FieldPath): Condition {
  return addressCondition(name, name === 'notIpBlocks', written, path, 'source address', (s) => s.ipWords(), (s) => s.ip)
}

/** An address in any of the blocks: the source's (ipBlocks, source.ip) or the destination's (destination.ip). */
export function addressCondition (name: string, negate: boolean, written: readonly string[], path: FieldPath, noun: string,
  words: (s: SourceView, at: Attributes) => IPWords | null, text: (s: SourceView, at: Attributes) => string | null): Condition {
  const blocks = written.map((w) => parseBlock(w)).filter((b): b is IPBlock => b !== null)
  const indexOf = (s: SourceView, _port: number, at: Attributes): number => {
    const ip = words(s, at)
    if (ip === null) return -1
    for (let i = 0; i < blocks.length; i++) if (blockContains(blocks[i], ip)) return i
    return -1
  }
  return finish(name, negate, written, path, {
    test: (s, port, at) => (indexOf(s, port, at) >= 0) !== negate,
    indexOf,
    subject: (s, _port, at) => words(s, at) === null ? null : `${noun} ${text(s, at) as string}`,
    absent: `the ${noun} is not known`
  })
}

export interface Parts {
  test: (s: SourceView, port: number, at: Attributes) => boolean
  indexOf: (s: SourceView, port: number, at: Attributes) => number
  /** "source namespace \"dev\"", or null when there is no such value. */
  subject: (s: SourceView, port: number, at: Attributes) => string | null
  absent?: string
  l7?: boolean
  portOnly?: boolean
}

export function finish (name: string, negate: boolean, values: readonly string[], path: FieldPath, p: Parts): Condition {
  const field = formatPath(path)
  const list = `[${values.map((v) => JSON.stringify(v)).join(', ')}]`
  const l7 = p.l7 === true
  return Object.freeze({
    field,
    path,
    values,
    l7,
    portOnly: p.portOnly === true,
    test: p.test,
    explain: (s: SourceView, port: number, at: Attributes): ConditionResult => {
      if (l7 && at.request === null) return { matched: false, detail: 'not evaluated: the connection carries no HTTP request', notEvaluated: true }
      const subject = p.subject(s, port, at)
      const i = p.indexOf(s, port, at)
      if (subject === null) {
        const detail = `${p.absent ?? 'no value'}: ${negate ? `so it is none of ${list}` : `${name} cannot match`}`
        return { matched: negate, detail }
      }
      if (i >= 0) {
        const detail = `${subject} matches ${name}[${i}] ${JSON.stringify(values[i])}`
        return { matched: !negate, index: i, detail }
      }
      return { matched: negate, detail: `${subject} matches none of ${name} ${list}` }
    }
  })
}

/** Istio's string match over a list: the index of the first value that matches, or -1. */
export function compileMatch (patterns: readonly string[]): (value: string | null) => number {
  const exact = new Map<string, number>()
  const prefixes: string[] = []
  const prefixAt: number[] = []
  const suffixes: string[] = []
  const suffixAt: number[] = []
  let any = -1
  patterns.forEach((p, i) => {
    if (p === '*') {
      if (any < 0) any = i
    } else if (p.endsWith('*')) {
      prefixes.push(p.slice(0, -1)); prefixAt.push(i)
    } else if (p.startsWith('*')) {
      suffixes.push(p.slice(1)); suffixAt.push(i)
    } else if (!exact.has(p)) {
      exact.set(p, i)
    }
  })
  return (value) => {
    if (value === null || value === '') return -1
    let best = exact.get(value) ?? -1
    for (let k = 0; k < prefixes.length; k++) {
      if ((best < 0 || prefixAt[k] < best) && value.startsWith(prefixes[k])) best = prefixAt[k]
    }
    for (let k = 0; k < suffixes.length; k++) {
      if ((best < 0 || suffixAt[k] < best) && value.endsWith(suffixes[k])) best = suffixAt[k]
    }
    if (any >= 0 && (best < 0 || any < best)) best = any
    return best
  }
}
