// The one door to @peculiar/x509 (CSR building and parsing, certificate issuing),
// which Node's crypto cannot do. The library resolves its ASN.1 codecs through tsyringe,
// which needs a Reflect metadata polyfill loaded first; importing the library through
// this file guarantees the order. Crypto is Node's own WebCrypto: no second provider.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export { x509 }
export { EC_P256, subtle } from './ec-p256'
