import { X509Certificate } from 'node:crypto'
import { ferryError } from '../errors'
import type { WorkloadKey } from './keys'
import { splitCertificates } from './pem'
import { trustBundleOf, verifyPeer } from './peer-verify'
import type { SpiffeId } from './spiffe-id'

// An X.509 SVID as the proxy uses it: the private key, the chain to present and the roots
// to trust, for one SPIFFE ID. Built only from a CA answer that checks out (svidFromChain):
// the leaf carries our key and exactly the identity we asked for, and chains to the root
// the CA sent last (Istio's order: leaf first, root last).

export interface Svid {
  readonly spiffeId: SpiffeId
  /** PKCS#8 PEM of the private key; it never leaves this process. */
  readonly key: string
  /** PEM certificates to present: the leaf first, then intermediates (never the root). */
  readonly chain: readonly string[]
  /** PEM root certificates that peers' chains must end at. */
  readonly bundle: readonly string[]
  /** Validity of the leaf, ms since the epoch. */
  readonly notBefore: number
  readonly notAfter: number
  /** Leaf serial number, hex; for logs. */
  readonly serial: string
}

/** Checks a CA's cert_chain against the key and identity it was requested for. Throws FERRY_ERR_CERT. */
export function svidFromChain (certChain: readonly string[], key: WorkloadKey, id: SpiffeId, now: number): Svid {
  const pems = certChain.flatMap((c) => splitCertificates(c))
  if (pems.length < 2) throw bad(id, `expected the leaf and the root, got ${pems.length} certificate(s)`)
  let certs: X509Certificate[]
  try {
    certs = pems.map((p) => new X509Certificate(p))
  } catch (err) {
    throw bad(id, `a certificate cannot be parsed: ${(err as Error).message}`)
  }
  const leaf = certs[0]
  if (!leaf.publicKey.export({ format: 'der', type: 'spki' }).equals(key.spki)) throw bad(id, 'the leaf does not carry the key of the request')
  const rootPem = pems[pems.length - 1]
  const trust = trustBundleOf(id.trustDomain, [rootPem])
  const verdict = verifyPeer({ leaf, intermediates: certs.slice(1, -1) }, trust, { expected: id.uri, now })
  if (!verdict.ok) throw bad(id, `${verdict.reason}: ${verdict.detail}`)
  return Object.freeze({
    spiffeId: id,
    key: key.privateKeyPem,
    chain: Object.freeze(pems.slice(0, -1)),
    bundle: Object.freeze([rootPem]),
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    serial: leaf.serialNumber
  })
}

function bad (id: SpiffeId, message: string): Error {
  return ferryError('FERRY_ERR_CERT', `the CA's answer for ${id.uri} is unusable: ${message}`)
}
