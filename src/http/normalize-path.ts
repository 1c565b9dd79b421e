import { ferryError } from '../errors'

// The request path as the destination's proxy forwards it and as L7 authorization
// matches it (src/policy/request-view.ts): normalized once, so that what a policy
// matched is what the application receives. Istio's `pathNormalization` options, with
// Ferry's default one step stricter than Istio's:
//
//   NONE                      nothing changed (only refused: see below)
//   BASE                      RFC 3986 §6.2.2: percent-encodings of unreserved
//                             characters decoded (%61 → a, %2E → .), other escapes
//                             upper-cased (%2f → %2F); "\" → "/" (as Envoy's
//                             normalize_path); dot segments removed (/a/./b, /a/../b),
//                             never above the root (/../a → /a)
//   MERGE_SLASHES (default)   BASE, then runs of "/" merged (//admin → /admin). Istio's
//                             default is BASE, which lets //admin past a /admin* rule
//   DECODE_AND_MERGE_SLASHES  MERGE_SLASHES with %2F and %5C decoded first (escaped
//                             slashes UNESCAPE_AND_FORWARD)
//
// Escaped slashes (%2F, %5C), Envoy's path_with_escaped_slashes_action: KEEP_UNCHANGED
// (the default, Envoy's: they stay escaped, so /%2Fadmin is not /admin to the policy
// nor, per RFC 3986, to the application), REJECT_REQUEST, UNESCAPE_AND_FORWARD
// (decoded, then normalized as the rest), UNESCAPE_AND_REDIRECT (Envoy answers a
// redirect to the unescaped path; Ferry refuses the request instead).
//
// Always refused (the caller answers 400): a request-target that is not origin-form
// ("/…", or "*" for OPTIONS), a control character or space, "#", an invalid
// percent-encoding (% not followed by two hex digits). Bytes above 0x7E are
// percent-encoded (as Chromium's canonicalizer, which Envoy uses, does). The query
// string is kept as sent and never matched.

export const PATH_NORMALIZATIONS = Object.freeze(['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const)
export type PathNormalization = typeof PATH_NORMALIZATIONS[number]

export const ESCAPED_SLASHES_ACTIONS = Object.freeze(['KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD'] as const)
export type EscapedSlashesAction = typeof ESCAPED_SLASHES_ACTIONS[number]

export interface PathNormalizationOptions {
  readonly normalization: PathNormalization
  readonly escapedSlashes: EscapedSlashesAction
}

export const PATH_NORMALIZATION_DEFAULTS: PathNormalizationOptions = Object.freeze({ normalization: 'MERGE_SLASHES', escapedSlashes: 'KEEP_UNCHANGED' })

/** Why a path was refused: stable, for a counter's label and the access log. */
export type PathRejectReason = 'path_not_origin_form' | 'path_invalid_character' | 'path_invalid_percent_encoding' | 'path_escaped_slash'

export type NormalizedPath = { readonly path: string } | { readonly reject: PathRejectReason }

/**
 * Validates options once (unknown keys and values refused by name) and freezes them.
 * DECODE_AND_MERGE_SLASHES means UNESCAPE_AND_FORWARD; another action beside it is refused.
 */
export function pathNormalizationOptions (input: Partial<Record<keyof PathNormalizationOptions, unknown>> = {}): PathNormalizationOptions {
  for (const k of Object.keys(input)) {
    if (k !== 'normalization' && k !== 'escapedSlashes') throw invalid(`unknown option "${k}" (known: normalization, escapedSlashes)`)
  }
  const normalization = input.normalization ?? PATH_NORMALIZATION_DEFAULTS.normalization
  if (!PATH_NORMALIZATIONS.includes(normalization as PathNormalization)) throw invalid(`normalization ${JSON.stringify(normalization)} is not one of ${PATH_NORMALIZATIONS.join(', ')}`)
  const decode = normalization === 'DECODE_AND_MERGE_SLASHES'
  const escapedSlashes = input.escapedSlashes ?? (decode ? 'UNESCAPE_AND_FORWARD' : PATH_NORMALIZATION_DEFAULTS.escapedSlashes)
  if (!ESCAPED_SLASHES_ACTIONS.includes(escapedSlashes as EscapedSlashesAction)) throw invalid(`escapedSlashes ${JSON.stringify(escapedSlashes)} is not one of ${ESCAPED_SLASHES_ACTIONS.join(', ')}`)
  if (decode && escapedSlashes !== 'UNESCAPE_AND_FORWARD') throw invalid(`DECODE_AND_MERGE_SLASHES decodes escaped slashes: escapedSlashes ${String(escapedSlashes)} contradicts it`)
  return Object.freeze({ normalization: normalization as PathNormalization, escapedSlashes: escapedSlashes as EscapedSlashesAction })
}

/** The HTTP engine's `normalizePath` option: `raw` is the request-target as received. */
export function pathNormalizer (options: PathNormalizationOptions = PATH_NORMALIZATION_DEFAULTS): (raw: string) => NormalizedPath {
  const opts = Object.isFrozen(options) ? options : pathNormalizationOptions(options)
  return (raw) => normalizePath(raw, opts)
}

export function normalizePath (raw: string, options: PathNormalizationOptions = PATH_NORMALIZATION_DEFAULTS): NormalizedPath {
  if (raw === '*') return { path: raw }
  if (raw.charCodeAt(0) !== SLASH) return REJECT_NOT_ORIGIN
  const q = raw.indexOf('?')
  const pathPart = q < 0 ? raw : raw.slice(0, q)
  const query = q < 0 ? '' : raw.slice(q)
  if (!validQuery(query)) return REJECT_CHAR
  if (options.normalization === 'NONE') {
    const checked = escapePath(pathPart, 'KEEP_UNCHANGED', false)
    return typeof checked === 'string' ? { path: raw } : checked
  }
  const decoded = escapePath(pathPart, options.escapedSlashes, true)
  if (typeof decoded !== 'string') return decoded
  let path = removeDotSegments(decoded.replace(/\\/g, '/'))
  if (options.normalization !== 'BASE') path = path.replace(/\/{2,}/g, '/')
  return { path: path + query }
}

const SLASH = 0x2f
const REJECT_NOT_ORIGIN = Object.freeze({ reject: 'path_not_origin_form' as const })
const REJECT_CHAR = Object.freeze({ reject: 'path_invalid_character' as const })
const REJECT_PERCENT = Object.freeze({ reject: 'path_invalid_percent_encoding' as const })
const REJECT_SLASH = Object.freeze({ reject: 'path_escaped_slash' as const })
const HEX = '0123456789ABCDEF'

/** Control characters, space, DEL and "#": never in a request-target. */
function badChar (c: number): boolean {
  return c <= 0x20 || c === 0x7f || c === 0x23
}

function validQuery (query: string): boolean {
  for (let i = 0; i < query.length; i++) if (badChar(query.charCodeAt(i))) return false
  return true
}

function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

/** ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3). */
function unreserved (c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
}

/**
 * Checks every character and percent-encoding; with `normalize`, decodes unreserved
 * escapes, upper-cases the others, percent-encodes bytes above 0x7E and applies the
 * escaped-slash action. Returns the path, or why it is refused.
 */
function escapePath (path: string, action: EscapedSlashesAction, normalize: boolean): string | Extract<NormalizedPath, { reject: string }> {
  let out = ''
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (badChar(c)) return REJECT_CHAR
    if (c === 0x25) { // "%"
      const hi = i + 2 < path.length ? hexValue(path.charCodeAt(i + 1)) : -1
      const lo = hi < 0 ? -1 : hexValue(path.charCodeAt(i + 2))
      if (lo < 0) return REJECT_PERCENT
      const byte = hi * 16 + lo
      i += 2
      if (!normalize) continue
      if (byte === 0x2f || byte === 0x5c) {
        if (action === 'REJECT_REQUEST' || action === 'UNESCAPE_AND_REDIRECT') return REJECT_SLASH
        out += action === 'UNESCAPE_AND_FORWARD' ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`
      } else {
        out += unreserved(byte) ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`
      }
    } else if (c > 0x7e) {
      if (!normalize) continue
      // Node hands the request-target over as latin1: one char per byte.
      if (c > 0xff) return REJECT_CHAR
      out += `%${HEX[c >> 4]}${HEX[c & 15]}`
    } else if (normalize) {
      out += path[i]
    }
  }
  return out
}

/** RFC 3986 §5.2.4 on an absolute path: "." and ".." segments resolved, never above the root. */
export function removeDotSegments (path: string): string {
  if (!path.includes('.')) return path
  const segments = path.split('/')
  const out: string[] = []
  // segments[0] is "" (the path starts with "/").
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]
    const last = i === segments.length - 1
    if (s === '.') {
      if (last) out.push('')
    } else if (s === '..') {
      out.pop()
      if (last) out.push('')
    } else {
      out.push(s)
    }
  }
  return '/' + out.join('/')
}

function invalid (message: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `path normalization: ${message}`)
}
