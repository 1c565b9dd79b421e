import { isIPBlock, isPortString, isStringMatch } from './formats'

// The keys of an AuthorizationPolicy's `when` conditions, as Istio names them
// (istio.io/latest/docs/reference/config/security/conditions/), and what Ferry does
// with each: evaluates it (with which values), cannot evaluate it (a reason: the rule is
// degraded, src/resources/degrade.ts), or does not know it (malformed, as Istio refuses
// an unknown key). One table shared by validation and the compiler (src/policy/when.ts).

/** What a condition reads. `request.header` is per request (L7); the rest is known per connection. */
export type ConditionAttribute = 'request.header' | 'source.ip' | 'source.namespace' | 'source.principal' | 'destination.ip' | 'destination.port'

export type ConditionKey =
  | { readonly kind: 'supported', readonly attribute: ConditionAttribute, readonly header?: string }
  | { readonly kind: 'unsupported', readonly reason: string }
  | { readonly kind: 'unknown' }

const HEADER = /^request\.headers\[([^\]]+)\]$/
/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const SUPPORTED: Readonly<Record<string, ConditionAttribute>> = Object.freeze({
  'source.ip': 'source.ip',
  'source.namespace': 'source.namespace',
  'source.principal': 'source.principal',
  'destination.ip': 'destination.ip',
  'destination.port': 'destination.port'
})

const JWT = 'request.auth.* come from JWTs validated by a RequestAuthentication, which Ferry does not have'
const UNSUPPORTED_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['request.auth.', JWT],
  ['remote.ip', 'the original client address (X-Forwarded-For, PROXY protocol) is not known to Ferry; use source.ip'],
  ['connection.sni', 'the TLS server name the client sent to the application is not seen by Ferry'],
  ['experimental.envoy.filters.', 'Envoy filter metadata does not exist in Ferry']
]

export function conditionKey (key: string): ConditionKey {
  const attribute = SUPPORTED[key]
  if (attribute !== undefined) return { kind: 'supported', attribute }
  const h = HEADER.exec(key)
  if (h !== null && TOKEN.test(h[1])) return { kind: 'supported', attribute: 'request.header', header: h[1].toLowerCase() }
  for (const [prefix, reason] of UNSUPPORTED_PREFIXES) if (key === prefix || key.startsWith(prefix)) return { kind: 'unsupported', reason }
  return { kind: 'unknown' }
}

export const KNOWN_KEYS = 'request.headers[NAME], source.ip, source.namespace, source.principal, destination.ip, destination.port, remote.ip, request.auth.*, connection.sni'

/** Whether `value` is a valid value of a supported attribute, and what is expected if not. */
export function conditionValueProblem (attribute: ConditionAttribute, value: string): string | null {
  switch (attribute) {
    case 'source.ip':
    case 'destination.ip':
      return isIPBlock(value) ? null : 'is not an IP address or CIDR block (e.g. 10.0.0.0/16, 192.168.1.7, fd00::/64)'
    case 'destination.port':
      return isPortString(value) ? null : 'is not a port number from 1 to 65535'
    default:
      return isStringMatch(value) ? null : 'is not a match: write an exact value, "prefix*", "*suffix" or "*" (one "*", at the start or the end)'
  }
}
