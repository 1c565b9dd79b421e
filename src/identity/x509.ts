// The one door to @peculiar/x509 (CSR building and parsing, certificate issuing),
// which Node's crypto cannot do. The library resolves its ASN.1 codecs through tsyringe,
// which needs a Reflect metadata polyfill loaded first; importing the library through
// this file guarantees the order. Crypto is Node's own WebCrypto: no second provider.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export { x509 }

/** WebCrypto parameters of every key Ferry makes: ECDSA on P-256, signing with SHA-256. */
export const EC_P256 = Object.freeze({ name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' })

export const subtle = webcrypto.subtle
