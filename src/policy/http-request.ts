import { ferryError } from '../errors'
import { normalizePath, PATH_NORMALIZATION_DEFAULTS, type PathNormalizationOptions } from '../http/normalize-path'
import type { RequestView } from './request-view'

// The HTTP request `ferry policy check --path --method --header --host` (and the agent's
// /debug/authz with path=, method=, header=, host=) decides: what a person typed, made
// into the RequestView the data path would build — the path normalized as the
// destination's proxy normalizes it, so the check decides what the proxy would.

export interface HttpRequestSpec {
  readonly method?: string
  readonly path?: string
  readonly host?: string
  /** "name:value" each; a name given twice has its values joined with ",", as the proxy does. */
  readonly headers?: readonly string[]
}

export interface CheckedRequest {
  readonly view: RequestView
  /** The path as typed (before normalization). */
  readonly rawPath: string
  readonly headers: Readonly<Record<string, string>>
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** A request to check, or null when no HTTP field was given. Throws FERRY_ERR_INVALID_ARG for what the proxy would refuse. */
export function requestOf (spec: HttpRequestSpec, normalization: PathNormalizationOptions = PATH_NORMALIZATION_DEFAULTS): CheckedRequest | null {
  if (spec.method === undefined && spec.path === undefined && spec.host === undefined && (spec.headers ?? []).length === 0) return null
  const method = spec.method ?? 'GET'
  if (!TOKEN.test(method)) throw invalid(`--method "${method}" is not an HTTP method`)
  const rawPath = spec.path ?? '/'
  const n = normalizePath(rawPath, normalization)
  if (!('path' in n)) throw invalid(`--path "${rawPath}": the proxy refuses this path with 400 (${n.reject}) before any policy decides`)
  const headers: Record<string, string> = {}
  for (const h of spec.headers ?? []) {
    const colon = h.indexOf(':')
    const name = colon <= 0 ? '' : h.slice(0, colon).trim().toLowerCase()
    if (!TOKEN.test(name)) throw invalid(`--header "${h}" is not NAME:VALUE`)
    const value = h.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`
  }
  const host = spec.host ?? headers.host ?? ''
  if (host !== '') headers.host = host
  const frozen = Object.freeze({ ...headers })
  return {
    rawPath,
    headers: frozen,
    view: Object.freeze({ method, path: n.path, host, header: (name: string) => frozen[name] })
  }
}

function invalid (message: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry policy check: ${message}`)
}
