import type { FieldPath } from '../resources/issues'
import { isPathTemplate } from '../resources/formats'
import { type Attributes, type Condition, compileMatch, finish } from './match'

// The L7 conditions of a rule: `to[].operation` methods, paths, hosts (and their not…
// forms) and `when` on `request.headers[NAME]`, matched against the HTTP request as
// Istio's proxy matches them:
//
// - methods: the method as sent, case-sensitive; exact, "prefix*", "*suffix", "*".
// - hosts: the Host / :authority as sent (a port in it is part of the value), compared
//   without case; exact, "prefix*", "*suffix", "*".
// - paths: the normalized path without its query string, case-sensitive (/ADMIN is not
//   /admin); exact, "prefix*", "*suffix", "*", or a template whose `{*}` is one
//   segment and whose last `{**}` is one or more segments (/api/{*}/items, /files/{**}).
// - request.headers[NAME]: the header's value (several joined with ","); exact,
//   "prefix*", "*suffix", "*" (present).
// A not… form (and notValues) holds when the value matches none of its entries,
// including when the request has no such value (an absent header), as in Istio.

export type OperationL7Field = 'methods' | 'notMethods' | 'paths' | 'notPaths' | 'hosts' | 'notHosts'

/** One L7 condition of `to[].operation`. */
export function requestCondition (name: OperationL7Field, values: readonly string[], path: FieldPath): Condition {
  const negate = name.startsWith('not')
  switch (name) {
    case 'methods':
    case 'notMethods':
      return l7Condition(name, negate, values, path, compileMatch(values), 'request method', (at) => at.request?.method ?? null)
    case 'hosts':
    case 'notHosts': {
      const match = compileMatch(values.map((v) => v.toLowerCase()))
      return l7Condition(name, negate, values, path, (v) => match(v === null ? null : v.toLowerCase()), 'request host', (at) => at.request?.host ?? null)
    }
    case 'paths':
    case 'notPaths':
      return l7Condition(name, negate, values, path, compilePathMatch(values), 'request path', (at) => at.requestPath())
  }
}

/** `when: [{ key: request.headers[NAME], values | notValues }]`; `header` is lower case. */
export function headerCondition (name: 'values' | 'notValues', header: string, values: readonly string[], path: FieldPath): Condition {
  return l7Condition(name, name === 'notValues', values, path, compileMatch(values), `request header ${header}`, (at) => at.request?.header(header) ?? null)
}

function l7Condition (name: string, negate: boolean, values: readonly string[], path: FieldPath,
  match: (value: string | null) => number, noun: string, get: (at: Attributes) => string | null): Condition {
  return finish(name, negate, values, path, {
    l7: true,
    test: (_s, _port, at) => (match(get(at)) >= 0) !== negate,
    indexOf: (_s, _port, at) => match(get(at)),
    subject: (_s, _port, at) => { const v = get(at); return v === null ? null : `${noun} ${JSON.stringify(v)}` },
    absent: `the request has no ${noun.replace(/^request /, '')}`
  })
}

/** Istio's path match over a list: string matches and templates; the index of the first that matches, or -1. */
export function compilePathMatch (patterns: readonly string[]): (value: string | null) => number {
  const plain: string[] = []
  const plainAt: number[] = []
  const templates: Array<{ at: number, re: RegExp }> = []
  patterns.forEach((p, i) => {
    if (isPathTemplate(p)) templates.push({ at: i, re: templateRegExp(p) })
    else { plain.push(p); plainAt.push(i) }
  })
  const matchPlain = compileMatch(plain)
  if (templates.length === 0) return (v) => { const i = matchPlain(v); return i < 0 ? -1 : plainAt[i] }
  return (v) => {
    if (v === null || v === '') return -1
    const i = matchPlain(v)
    let best = i < 0 ? -1 : plainAt[i]
    for (const t of templates) if ((best < 0 || t.at < best) && t.re.test(v)) best = t.at
    return best
  }
}

/** A validated template (src/resources/formats.ts): literal segments, `{*}` one segment, a last `{**}` the rest. */
function templateRegExp (template: string): RegExp {
  const parts = template.slice(1).split('/').map((seg) =>
    seg === '{*}' ? '[^/]+' : seg === '{**}' ? '[^/].*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  return new RegExp(`^/${parts.join('/')}$`)
}
