import type { GrpcMethodMatch, HeaderMatch, PathMatch, QueryMatch, RequestMatch, RoutedRequestView, StringMatch } from './model'

// A RequestMatch compiled once into a predicate (regular expressions built once, anchored:
// a full match as Gateway API and Istio's RE2 `regex` require). Per request, the router
// hands every predicate the same MatchInput: the request, the query parsed on first use,
// and who calls.

/** The calling pod: Istio's sourceLabels / sourceNamespace match it. */
export interface Caller {
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
  /** The pod's IP ('' when unknown): consistent hashing on the source IP. */
  readonly ip: string
}

export class MatchInput {
  private params: URLSearchParams | null = null
  constructor (readonly view: RoutedRequestView, readonly caller: Caller) {}

  /** The first value of a query parameter (Gateway API: the first one counts), decoded; undefined when absent. */
  query (name: string): string | undefined {
    this.params ??= new URLSearchParams(this.view.query)
    return this.params.get(name) ?? undefined
  }
}

export type Matcher = (input: MatchInput) => boolean

const ALWAYS: Matcher = () => true

/** The predicate of one match; null (a rule without matches) matches every request. */
export function compileMatch (m: RequestMatch | null): Matcher {
  if (m === null) return ALWAYS
  const parts: Matcher[] = []
  if (m.path !== null) {
    const p = pathMatcher(m.path)
    parts.push((i) => p(i.view.path))
  }
  if (m.method !== null) {
    const method = m.method
    parts.push((i) => i.view.method === method)
  }
  for (const h of m.headers) parts.push(headerMatcher(h))
  for (const q of m.query) parts.push(queryMatcher(q))
  if (m.grpc !== null) {
    const g = grpcMatcher(m.grpc)
    parts.push((i) => i.view.grpc && g(i.view.path))
  }
  if (m.authority !== null) {
    const a = stringMatcher(m.authority)
    parts.push((i) => a(i.view.host))
  }
  if (m.sourceLabels !== null) {
    const labels = Object.entries(m.sourceLabels)
    parts.push((i) => labels.every(([k, v]) => i.caller.labels[k] === v))
  }
  if (m.sourceNamespace !== null) {
    const ns = m.sourceNamespace
    parts.push((i) => i.caller.namespace === ns)
  }
  if (parts.length === 0) return ALWAYS
  if (parts.length === 1) return parts[0]
  return (i) => {
    for (const p of parts) if (!p(i)) return false
    return true
  }
}

/** Anchored: the whole value must match. */
export function fullMatch (pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`)
}

export function pathMatcher (m: PathMatch): (path: string) => boolean {
  const v = m.value
  switch (m.type) {
    case 'Exact': return (p) => p === v
    case 'Prefix': return (p) => p.startsWith(v)
    case 'PathPrefix': {
      // Whole segments: /abc matches /abc, /abc/ and /abc/def, not /abcd; a trailing '/' in the value is ignored.
      const base = v.replace(/\/+$/, '')
      if (base === '') return () => true
      const slash = `${base}/`
      return (p) => p === base || p.startsWith(slash)
    }
    case 'RegularExpression': {
      const re = fullMatch(v)
      return (p) => re.test(p)
    }
  }
}

export function stringMatcher (m: StringMatch): (s: string) => boolean {
  const v = m.value
  switch (m.type) {
    case 'Exact': return (s) => s === v
    case 'Prefix': return (s) => s.startsWith(v)
    case 'RegularExpression': {
      const re = fullMatch(v)
      return (s) => re.test(s)
    }
  }
}

/** Pseudo-headers (Istio lets a header match name them) read the request's own fields. */
function headerOf (name: string): (i: MatchInput) => string | undefined {
  switch (name) {
    case ':method': return (i) => i.view.method
    case ':authority': return (i) => i.view.host
    case ':path': return (i) => i.view.query === '' ? i.view.path : `${i.view.path}?${i.view.query}`
    default: return (i) => i.view.header(name)
  }
}

function headerMatcher (h: HeaderMatch): Matcher {
  const read = headerOf(h.name)
  const value = h.match === null ? null : stringMatcher(h.match)
  const holds = value === null
    ? (i: MatchInput) => read(i) !== undefined
    : (i: MatchInput) => { const got = read(i); return got !== undefined && value(got) }
  return h.invert ? (i) => !holds(i) : holds
}

function queryMatcher (q: QueryMatch): Matcher {
  const name = q.name
  const value = q.match === null ? null : stringMatcher(q.match)
  return (i) => {
    const got = i.query(name)
    return got !== undefined && (value === null || value(got))
  }
}

/** `/service/method` against GRPCRoute's method match (either part may be absent: any). */
export function grpcMatcher (g: GrpcMethodMatch): (path: string) => boolean {
  const part = (v: string | null): ((s: string) => boolean) => {
    if (v === null) return () => true
    if (g.type === 'Exact') return (s) => s === v
    const re = fullMatch(v)
    return (s) => re.test(s)
  }
  const service = part(g.service)
  const method = part(g.method)
  return (path) => {
    const slash = path.indexOf('/', 1)
    if (path[0] !== '/' || slash < 0) return false
    return service(path.slice(1, slash)) && method(path.slice(slash + 1))
  }
}
