import { isIP } from 'node:net'

// The value formats of policy fields, shared by the schema's checks (validate.ts) and
// the `when` conditions' (conditions.ts). Pure functions of one string.

const MAX_PORT = 65535

/** Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any value present). */
export function isStringMatch (s: string): boolean {
  if (s === '') return false
  const inner = s.slice(s.startsWith('*') ? 1 : 0, s.endsWith('*') && s.length > 1 ? -1 : undefined)
  return !inner.includes('*') && !(s.length > 1 && s.startsWith('*') && s.endsWith('*'))
}

/** An IP address or a CIDR block, IPv4 or IPv6 (Istio's ipBlocks). */
export function isIPBlock (s: string): boolean {
  const slash = s.indexOf('/')
  const address = slash < 0 ? s : s.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return false
  if (slash < 0) return true
  const prefix = s.slice(slash + 1)
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

export function isPortString (s: string): boolean {
  return /^\d{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= MAX_PORT
}

/** A path with Istio's template operators `{*}` (one segment) or `{**}` (the rest). */
export function isPathTemplate (s: string): boolean {
  return s.includes('{') || s.includes('}')
}

/**
 * What is wrong with a `paths` entry, or null: a string match (exact, `prefix*`,
 * `*suffix`, `*`) or a path template whose operators `{*}` and `{**}` are whole
 * segments, `{**}` the last one, with no other `*`, `{` or `}` (the simple subset of
 * Envoy's URI templates that Istio documents; anything else is refused by name).
 */
export function pathMatchProblem (s: string): string | null {
  if (!isPathTemplate(s)) {
    return isStringMatch(s) ? null : 'is not a path match: write an exact path, "prefix*", "*suffix", "*", or a template with {*} / {**} segments'
  }
  if (!s.startsWith('/')) return 'is not a path template: it must start with "/"'
  const segments = s.slice(1).split('/')
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]
    if (seg === '{*}') continue
    if (seg === '{**}') {
      if (i !== segments.length - 1) return 'is not a supported path template: {**} must be the last segment'
      continue
    }
    if (seg.includes('{') || seg.includes('}') || seg.includes('*')) {
      return 'is not a supported path template: Ferry takes {*} and {**} as whole segments only (named variables, partial segments and "*" beside them are refused)'
    }
  }
  return null
}

export function isPathMatch (s: string): boolean {
  return pathMatchProblem(s) === null
}
