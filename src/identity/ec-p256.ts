import { webcrypto } from 'node:crypto'

// The key type of every key Ferry makes, apart from the x509 library so that making or
// using a key does not load it (src/identity/x509.ts re-exports these).

/** WebCrypto parameters of every key Ferry makes: ECDSA on P-256, signing with SHA-256. */
export const EC_P256 = Object.freeze({ name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' })

export const subtle = webcrypto.subtle
