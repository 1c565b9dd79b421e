import { createPublicKey, type KeyObject } from 'node:crypto'
import { ferryError, type FerryError } from '../errors'
import { parseSpiffeId, spiffeIdProblem, type SpiffeId } from './spiffe-id'
import type { WorkloadKey } from './keys'
import { derToPem, pemBlocks } from './pem'
import { EC_P256, x509 } from './x509'

// PKCS#10 certificate signing requests, both ends.
//
// Agent: a CSR for one SPIFFE ID carries an empty subject and exactly one extension
// request, a subjectAltName with that ID as its only URI.
//
// CA: `parseCsr` is the edge for untrusted input. It accepts exactly one PEM block of
// bounded size, checks the self-signature (proof that the caller holds the key), allows
// ECDSA P-256/P-384 or RSA >= 2048 keys (Istio's agent makes RSA 2048 keys by default, and
// its agent and Ferry's must be interchangeable), and requires the SAN to be exactly one
// URI that is a workload SPIFFE ID. The subject and other requested extensions are
// ignored: the CA decides what the certificate says.

/** Upper bound on a CSR's PEM text; a P-256 CSR is about 500 bytes, an RSA 4096 one 2 KB. */
export const MAX_CSR_PEM_BYTES = 16 * 1024
const SAN_OID = '2.5.29.17'
const MIN_RSA_BITS = 2048
const EC_CURVES = new Set(['prime256v1', 'secp384r1'])

export interface ParsedCsr {
  /** The one identity the CSR asks for. */
  readonly spiffeId: SpiffeId
  /** The requester's public key, as issued certificates must carry it. */
  readonly publicKey: x509.PublicKey
  readonly publicKeyObject: KeyObject
}

/** A PEM CSR for `id`, signed with the workload key. */
export async function createCsr (key: WorkloadKey, id: SpiffeId): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.uri }])]
  })
  return derToPem(csr.rawData, 'CERTIFICATE REQUEST')
}

/** Parses and verifies an untrusted CSR. Throws FERRY_ERR_CSR saying what is wrong. */
export async function parseCsr (pem: string): Promise<ParsedCsr> {
  if (typeof pem !== 'string' || pem.length === 0) throw bad('the CSR is empty')
  if (Buffer.byteLength(pem) > MAX_CSR_PEM_BYTES) throw bad(`the CSR is larger than ${MAX_CSR_PEM_BYTES} bytes`)
  const blocks = pemBlocks(pem, 'CERTIFICATE REQUEST')
  if (blocks.length !== 1) throw bad(`expected one PEM "CERTIFICATE REQUEST" block, found ${blocks.length}`)
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(blocks[0])
  } catch (err) {
    throw bad(`not a PKCS#10 request: ${(err as Error).message}`, err)
  }
  // The library decodes the key and the extensions when they are first read, not in the
  // constructor: each read is part of parsing, and its failure a malformed request.
  let publicKey: x509.PublicKey
  try {
    publicKey = csr.publicKey
  } catch (err) {
    throw bad(`the public key cannot be read: ${(err as Error).message}`, err)
  }
  const publicKeyObject = checkKey(publicKey)
  let signed: boolean
  try {
    signed = await csr.verify()
  } catch (err) {
    throw bad(`the signature cannot be checked: ${(err as Error).message}`, err)
  }
  if (!signed) throw bad('the signature does not match the public key')
  return Object.freeze({ spiffeId: requestedIdentity(csr), publicKey, publicKeyObject })
}

function checkKey (publicKey: x509.PublicKey): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey({ key: Buffer.from(publicKey.rawData), format: 'der', type: 'spki' })
  } catch (err) {
    throw bad(`the public key cannot be read: ${(err as Error).message}`, err)
  }
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'ec' && EC_CURVES.has(details.namedCurve ?? '')) return key
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= MIN_RSA_BITS) return key
  const what = key.asymmetricKeyType === 'ec' ? `EC ${details.namedCurve ?? '?'}` : `${key.asymmetricKeyType ?? '?'} ${details.modulusLength ?? '?'} bits`
  throw bad(`unsupported key ${what}: use ECDSA P-256/P-384 or RSA >= ${MIN_RSA_BITS} bits`)
}

function requestedIdentity (csr: x509.Pkcs10CertificateRequest): SpiffeId {
  let extensions: readonly x509.Extension[]
  try {
    extensions = csr.extensions
  } catch (err) {
    throw bad(`the requested extensions cannot be read: ${(err as Error).message}`, err)
  }
  const sans = extensions.filter((e) => e.type === SAN_OID)
  if (sans.length !== 1) throw bad(`expected one subjectAltName extension, found ${sans.length}`)
  let names: readonly x509.GeneralName[]
  try {
    names = new x509.SubjectAlternativeNameExtension(sans[0].rawData).names.items
  } catch (err) {
    throw bad(`the subjectAltName cannot be read: ${(err as Error).message}`, err)
  }
  if (names.length !== 1 || names[0].type !== 'url') {
    throw bad(`the subjectAltName must be exactly one URI, found ${names.map((n) => n.type).join(', ') || 'none'}`)
  }
  const problem = spiffeIdProblem(names[0].value)
  if (problem !== null) throw bad(`the URI SAN is not a workload SPIFFE ID: ${problem}`)
  return parseSpiffeId(names[0].value)
}

function bad (message: string, cause?: unknown): FerryError {
  return ferryError('FERRY_ERR_CSR', `certificate signing request rejected: ${message}`, { cause })
}
