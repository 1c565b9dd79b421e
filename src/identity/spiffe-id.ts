import { ferryError } from '../errors'

// A workload's identity, as Istio spells it: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
// The string form is the contract (it is what certificates carry in their URI SAN and
// what logs and metrics show); SpiffeId is its parsed, validated, frozen form.
//
// Rules: the SPIFFE ID spec (trust domain of lowercase letters, digits, ".", "-", "_";
// at most 2048 bytes in all) narrowed to Kubernetes names: the namespace is an RFC 1123
// label and the service account an RFC 1123 subdomain, so every ID Ferry accepts names
// something that can exist in a cluster.

export interface SpiffeId {
  readonly trustDomain: string
  readonly namespace: string
  readonly serviceAccount: string
  /** The canonical URI: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
  readonly uri: string
}

const SCHEME = 'spiffe://'
const MAX_URI_BYTES = 2048
const MAX_TRUST_DOMAIN = 255
const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const MAX_LABEL = 63
const MAX_SUBDOMAIN = 253

/** Parses a SPIFFE ID string. Throws FERRY_ERR_SPIFFE_ID naming the part that is wrong. */
export function parseSpiffeId (uri: string): SpiffeId {
  const problem = spiffeIdProblem(uri)
  if (problem !== null) throw ferryError('FERRY_ERR_SPIFFE_ID', `"${printable(uri)}" is not a workload SPIFFE ID: ${problem}`)
  const [trustDomain, , namespace, , serviceAccount] = uri.slice(SCHEME.length).split('/')
  return Object.freeze({ trustDomain, namespace, serviceAccount, uri })
}

/** Like parseSpiffeId, for untrusted input (a peer's SAN): null instead of an error. */
export function tryParseSpiffeId (uri: string): SpiffeId | null {
  return spiffeIdProblem(uri) === null ? parseSpiffeId(uri) : null
}

/** Builds and validates the ID of a service account. */
export function spiffeIdOf (trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  return parseSpiffeId(formatSpiffeId({ trustDomain, namespace, serviceAccount }))
}

/** The canonical string of an ID (no validation: use spiffeIdOf to build a checked one). */
export function formatSpiffeId (id: { trustDomain: string, namespace: string, serviceAccount: string }): string {
  return `${SCHEME}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`
}

/** Throws FERRY_ERR_SPIFFE_ID unless `td` is a valid trust domain name. */
export function validateTrustDomain (td: string): string {
  const problem = trustDomainProblem(td)
  if (problem !== null) throw ferryError('FERRY_ERR_SPIFFE_ID', `trust domain "${printable(td)}" is invalid: ${problem}`)
  return td
}

/** Why `uri` is not a valid workload ID, or null when it is. */
export function spiffeIdProblem (uri: string): string | null {
  if (typeof uri !== 'string') return 'not a string'
  if (Buffer.byteLength(uri) > MAX_URI_BYTES) return `longer than ${MAX_URI_BYTES} bytes`
  if (!uri.startsWith(SCHEME)) return `the scheme must be "${SCHEME}" (lowercase)`
  const rest = uri.slice(SCHEME.length)
  if (/[?#]/.test(rest)) return 'a query or fragment is not allowed'
  const parts = rest.split('/')
  const tdProblem = trustDomainProblem(parts[0])
  if (tdProblem !== null) return `trust domain: ${tdProblem}`
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return 'the path must be /ns/<namespace>/sa/<service-account>'
  const [, , namespace, , serviceAccount] = parts
  if (namespace.length > MAX_LABEL || !DNS_LABEL.test(namespace)) return `namespace "${printable(namespace)}" is not a Kubernetes namespace name`
  if (serviceAccount.length > MAX_SUBDOMAIN || !DNS_SUBDOMAIN.test(serviceAccount)) return `service account "${printable(serviceAccount)}" is not a Kubernetes name`
  return null
}

function trustDomainProblem (td: string): string | null {
  if (td === '') return 'empty'
  if (td.length > MAX_TRUST_DOMAIN) return `longer than ${MAX_TRUST_DOMAIN} characters`
  if (td.includes(':')) return 'a port is not allowed'
  if (td.includes('@')) return 'userinfo is not allowed'
  if (!TRUST_DOMAIN.test(td)) return 'only lowercase letters, digits, ".", "-" and "_" are allowed'
  return null
}

/** Keeps hostile input from spilling control characters or megabytes into a log line. */
function printable (s: unknown): string {
  const str = String(s)
  // eslint-disable-next-line no-control-regex
  const clean = str.replace(/[\u0000-\u001f\u007f]/g, '?')
  return clean.length > 120 ? `${clean.slice(0, 120)}…` : clean
}
