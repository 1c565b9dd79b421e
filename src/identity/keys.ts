import { webcrypto } from 'node:crypto'
import { EC_P256, subtle } from './ec-p256'
import { derToPem } from './pem'

// Workload keys: ECDSA P-256, made in this process and never sent anywhere. The CSR is
// signed with the CryptoKey; node:tls needs the private key as PKCS#8 PEM, which is the
// only export and stays in memory (Ferry never writes workload keys to disk).

export interface WorkloadKey {
  readonly privateKey: webcrypto.CryptoKey
  readonly publicKey: webcrypto.CryptoKey
  /** PKCS#8 PEM of the private key, for tls.createSecureContext. */
  readonly privateKeyPem: string
  /** DER SubjectPublicKeyInfo, to check that an issued certificate carries this key. */
  readonly spki: Buffer
}

export async function generateWorkloadKey (): Promise<WorkloadKey> {
  const pair = await subtle.generateKey(EC_P256, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const pkcs8 = await subtle.exportKey('pkcs8', pair.privateKey)
  const spki = Buffer.from(await subtle.exportKey('spki', pair.publicKey))
  return Object.freeze({ privateKey: pair.privateKey, publicKey: pair.publicKey, privateKeyPem: derToPem(pkcs8, 'PRIVATE KEY'), spki })
}
