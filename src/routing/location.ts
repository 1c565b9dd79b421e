import type { PathMatch, PathModifier, Redirect } from './model'

// Paths and locations as Gateway API's filters define them (and Istio's, where it differs).

const WELL_KNOWN: Readonly<Record<string, number>> = Object.freeze({ http: 80, https: 443 })

/** The Host header without its port ("[::1]:80" → "[::1]"). */
export function hostOnly (host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    return end < 0 ? host : host.slice(0, end + 1)
  }
  const colon = host.lastIndexOf(':')
  return colon < 0 ? host : host.slice(0, colon)
}

/**
 * A path after a path modifier. ReplaceFullPath: the value. ReplacePrefixMatch: the
 * matched prefix replaced — PathPrefix whole segments (Gateway API: /foo + /foo/bar with
 * /xyz → /xyz/bar, with "" → /bar), Istio's string prefix as is, and after an exact or
 * regular-expression match (or none) the whole path (Istio: none is the prefix "/").
 */
export function modifyPath (path: string, modifier: PathModifier, matched: PathMatch | null): string {
  if (modifier.type === 'ReplaceFullPath') return modifier.value
  if (matched === null) return modifier.value + path.slice(1)
  switch (matched.type) {
    case 'PathPrefix': {
      const prefix = matched.value.replace(/\/+$/, '')
      const rest = path.slice(prefix.length)
      const replaced = modifier.value.replace(/\/+$/, '') + rest
      return replaced === '' ? '/' : replaced.startsWith('/') ? replaced : `/${replaced}`
    }
    case 'Prefix': return modifier.value + path.slice(matched.value.length)
    default: return modifier.value
  }
}

/**
 * Gateway API's redirect Location: the filter's scheme (else the request's, http in the
 * mesh), hostname (else the request's host), path (modified, else the request's, with its
 * query). The port: the filter's; else the scheme's well-known port when the filter sets
 * a scheme; else the port the request was sent to. A port well known for the scheme is
 * left out.
 */
export function redirectLocation (r: Redirect, req: { readonly host: string, readonly path: string, readonly query: string }, requestPort: number, matched: PathMatch | null): string {
  const scheme = r.scheme ?? 'http'
  const host = r.hostname ?? hostOnly(req.host)
  const port = r.port ?? (r.scheme !== null ? WELL_KNOWN[scheme] ?? null : requestPort)
  const path = r.path === null ? req.path : modifyPath(req.path, r.path, matched)
  const shownPort = port === null || WELL_KNOWN[scheme] === port ? '' : `:${port}`
  return `${scheme}://${host}${shownPort}${path}${req.query === '' ? '' : `?${req.query}`}`
}
