import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { ferryError } from '../errors'
import { derToPem } from '../identity/pem'
import { EC_P256, subtle, x509 } from '../identity/x509'

// The CA's root of trust: an ECDSA P-256 key and a self-signed certificate. Made once
// (createRootCa) and then only read back (loadRootCa), which checks that the key and the
// certificate belong together and that the certificate may sign others. The private key
// is imported non-extractable: once loaded, nothing in the process can read it back out.

/**
 * How long before its issuance every certificate the CA makes is already valid (the root
 * and what issuer.ts signs): agents whose clocks run up to a minute behind the
 * controller's must not find a fresh certificate "not yet valid".
 */
export const CERT_BACKDATE_MS = 60_000

/** Root certificates outlive everything they sign by far; rotating a root is a later feature. */
export const ROOT_VALIDITY_MS = 10 * 365 * 86_400_000

export interface RootCa {
  /** Signs certificates; not extractable. */
  readonly signingKey: webcrypto.CryptoKey
  readonly cert: x509.X509Certificate
  readonly certPem: string
  readonly notBefore: number
  readonly notAfter: number
}

export interface NewRootCa extends RootCa {
  /** PKCS#8 PEM, returned only at creation so that the store can persist it. */
  readonly keyPem: string
}

export async function createRootCa (trustDomain: string, now: number): Promise<NewRootCa> {
  const keys = await subtle.generateKey(EC_P256, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  // Backdated like the leaves it signs (issuer.ts): agents whose clocks are a little behind
  // must not find the root of a freshly made CA "not yet valid".
  const notBefore = new Date(Math.floor(now / 1000) * 1000 - CERT_BACKDATE_MS)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: ['Ferry'] }, { CN: [`Ferry root CA ${trustDomain}`] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + CERT_BACKDATE_MS + ROOT_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
    ]
  })
  const keyPem = derToPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
  const root = await loadRootCa(keyPem, derToPem(cert.rawData, 'CERTIFICATE'), 'new root')
  return Object.freeze({ ...root, keyPem })
}

/** Reads a persisted root back. `origin` names the files in errors (FERRY_ERR_CA_STORE). */
export async function loadRootCa (keyPem: string, certPem: string, origin: string): Promise<RootCa> {
  let nodeCert: X509Certificate
  let cert: x509.X509Certificate
  try {
    nodeCert = new X509Certificate(certPem)
    cert = new x509.X509Certificate(certPem)
  } catch (err) {
    throw storeError(`${origin}: the root certificate cannot be parsed: ${(err as Error).message}`, err)
  }
  if (!nodeCert.ca) throw storeError(`${origin}: the root certificate is not a CA certificate`)
  let spkiOfKey: Buffer
  let pkcs8: Buffer
  try {
    const priv = createPrivateKey(keyPem)
    if (priv.asymmetricKeyType !== 'ec' || priv.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`expected an EC P-256 key, found ${priv.asymmetricKeyType ?? '?'} ${priv.asymmetricKeyDetails?.namedCurve ?? ''}`)
    }
    spkiOfKey = createPublicKey(priv).export({ format: 'der', type: 'spki' })
    pkcs8 = priv.export({ format: 'der', type: 'pkcs8' })
  } catch (err) {
    throw storeError(`${origin}: the root key cannot be used: ${(err as Error).message}`, err)
  }
  const spkiOfCert = nodeCert.publicKey.export({ format: 'der', type: 'spki' })
  if (!spkiOfKey.equals(spkiOfCert)) throw storeError(`${origin}: the root key does not belong to the root certificate`)
  const signingKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
  return Object.freeze({ signingKey, cert, certPem: derToPem(cert.rawData, 'CERTIFICATE'), notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime() })
}

/** 128 random bits, positive as RFC 5280 wants (top bit clear, first byte non-zero). */
export function randomSerial (): string {
  const b = randomBytes(16)
  b[0] = (b[0] & 0x7f) | 0x01
  return b.toString('hex')
}

function storeError (message: string, cause?: unknown): Error {
  return ferryError('FERRY_ERR_CA_STORE', message, { cause })
}
