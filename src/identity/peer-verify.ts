import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { ferryError } from '../errors'
import { splitCertificates } from './pem'
import { uriSans } from './san-uris'
import { tryParseSpiffeId, type SpiffeId } from './spiffe-id'

// Who is on the other end of a TLS connection, and may we talk to them? verifyPeer checks
// a presented chain, in this order, and names the first thing that fails:
//
//   no-certificate       the peer presented none
//   malformed            unparsable, a CA certificate as the leaf, or several URI SANs
//   other-ca             no path from the leaf (through presented intermediates) to a root
//                        of the trust bundle
//   not-yet-valid        a certificate on the path is not valid yet
//   expired              a certificate on the path has expired
//   no-san               the leaf carries no URI SAN that is a workload SPIFFE ID
//   wrong-trust-domain   the SPIFFE ID is of another trust domain than the bundle's
//   wrong-identity       the SPIFFE ID is not the one (or one of those) expected
//   untrusted            (verifyTlsPeer only) our checks passed but OpenSSL's did not,
//                        e.g. a wrong key usage; the detail carries OpenSSL's reason
//
// Results, not exceptions: this runs on the data path, where failures are counted and
// logged. Checks are synchronous (node:crypto signature checks, no I/O).

export type PeerRejectReason =
  | 'no-certificate' | 'malformed' | 'other-ca' | 'not-yet-valid' | 'expired'
  | 'no-san' | 'wrong-trust-domain' | 'wrong-identity' | 'untrusted'

export type PeerVerification =
  /** validUntil: the earliest notAfter on the verified path (ms): the peer's proof lasts until then. */
  | { readonly ok: true, readonly spiffeId: SpiffeId, readonly validUntil: number }
  | { readonly ok: false, readonly reason: PeerRejectReason, readonly detail: string }

/** The roots of one trust domain, parsed once. */
export interface TrustBundle {
  readonly trustDomain: string
  readonly roots: readonly X509Certificate[]
}

/** A peer's leaf and any intermediates it sent (roots among them are ignored as anchors). */
export interface PeerChain {
  readonly leaf: X509Certificate
  readonly intermediates?: readonly X509Certificate[]
}

/** Paths longer than this are refused (Ferry's own are leaf → root). */
const MAX_PATH = 5

export function trustBundleOf (trustDomain: string, pems: readonly string[]): TrustBundle {
  const roots = pems.flatMap((p) => splitCertificates(p)).map((p) => new X509Certificate(p))
  if (roots.length === 0) throw ferryError('FERRY_ERR_CERT', `the trust bundle of ${trustDomain} has no certificate`)
  return Object.freeze({ trustDomain, roots: Object.freeze(roots) })
}

export function verifyPeer (peer: PeerChain | X509Certificate | null | undefined, trust: TrustBundle,
  opts: { expected?: string | readonly string[], now?: number } = {}): PeerVerification {
  if (peer === null || peer === undefined) return fail('no-certificate', 'the peer presented no certificate')
  const { leaf, intermediates = [] } = peer instanceof X509Certificate ? { leaf: peer } : peer
  const now = opts.now ?? Date.now()
  if (leaf.ca) return fail('malformed', 'the peer presented a CA certificate as its own')

  const path = pathToRoot(leaf, intermediates, trust.roots)
  if (path === null) return fail('other-ca', `issuer "${oneLine(leaf.issuer)}" does not chain to the ${trust.trustDomain} trust bundle`)
  let validUntil = Infinity
  for (const cert of path) {
    const from = Date.parse(cert.validFrom)
    const to = Date.parse(cert.validTo)
    validUntil = Math.min(validUntil, to)
    const which = cert === leaf ? 'the certificate' : `issuer "${oneLine(cert.subject)}"`
    if (!(now >= from)) return fail('not-yet-valid', `${which} is valid from ${new Date(from).toISOString()}`)
    if (!(now <= to)) return fail('expired', `${which} expired at ${new Date(to).toISOString()}`)
  }

  const uris = uriSans(leaf)
  if (uris === null) return fail('malformed', 'the subjectAltName cannot be read')
  if (uris.length > 1) return fail('malformed', `an SVID carries one URI SAN, this one has ${uris.length}`)
  const id = uris.length === 1 ? tryParseSpiffeId(uris[0]) : null
  if (id === null) return fail('no-san', uris.length === 0 ? 'the certificate has no URI SAN' : `URI SAN "${oneLine(uris[0])}" is not a workload SPIFFE ID`)
  if (id.trustDomain !== trust.trustDomain) return fail('wrong-trust-domain', `${id.uri} is not of trust domain ${trust.trustDomain}`)
  if (opts.expected !== undefined) {
    const expected = typeof opts.expected === 'string' ? [opts.expected] : opts.expected
    if (!expected.includes(id.uri)) return fail('wrong-identity', `peer is ${id.uri}, expected ${expected.join(' or ')}`)
  }
  return { ok: true, spiffeId: id, validUntil }
}

/**
 * verifyPeer for a TLS socket set up with tunnelServerOptions/tunnelClientOptions (which
 * leave verification to this function): call it on 'secureConnection' (server) or
 * 'secureConnect' (client), before reading or writing, and destroy the socket when it
 * fails. OpenSSL's own verdict (socket.authorized, against the same bundle) must agree.
 */
export function verifyTlsPeer (socket: TLSSocket, trust: TrustBundle, opts: { expected?: string | readonly string[], now?: number } = {}): PeerVerification {
  const verdict = verifyPeer(presentedChain(socket), trust, opts)
  if (verdict.ok && !socket.authorized) {
    return fail('untrusted', `TLS verification failed: ${String(socket.authorizationError ?? 'unknown reason')}`)
  }
  return verdict
}

/**
 * The leaf and the certificates the peer sent after it, from ONE getPeerCertificate(true)
 * call: on a client socket Node 20 hands the peer's certificates out only once (a second
 * getPeerX509Certificate/getPeerCertificate returns nothing), so reading leaf and chain
 * separately loses the intermediates.
 */
function presentedChain (socket: TLSSocket): { leaf: X509Certificate, intermediates: X509Certificate[] } | null {
  let cert = socket.getPeerCertificate(true)
  if (cert?.raw === undefined) return null
  const leaf = new X509Certificate(cert.raw)
  const intermediates: X509Certificate[] = []
  for (let i = 0; i < MAX_PATH && cert.issuerCertificate !== undefined && cert.issuerCertificate !== cert; i++) {
    cert = cert.issuerCertificate
    if (cert.raw !== undefined) intermediates.push(new X509Certificate(cert.raw))
  }
  return { leaf, intermediates }
}

/** leaf, intermediates…, root (a bundle root), or null when there is no such path. */
function pathToRoot (leaf: X509Certificate, intermediates: readonly X509Certificate[], roots: readonly X509Certificate[]): X509Certificate[] | null {
  const path = [leaf]
  let current = leaf
  while (path.length <= MAX_PATH) {
    const root = roots.find((r) => signedBy(current, r))
    if (root !== undefined) return [...path, root]
    const next = intermediates.find((c) => c.ca && !path.includes(c) && signedBy(current, c))
    if (next === undefined) return null
    path.push(next)
    current = next
  }
  return null
}

function signedBy (cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

function oneLine (s: string | undefined): string {
  return (s ?? '').replace(/\n/g, ', ')
}

function fail (reason: PeerRejectReason, detail: string): PeerVerification {
  return { ok: false, reason, detail }
}
