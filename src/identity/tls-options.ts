import { createSecureContext, type ConnectionOptions, type SecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls'
import type { Svid } from './svid'

// TLS settings for the mesh tunnel (HBONE: HTTP/2 over mutual TLS, port 15008): TLS 1.3
// only, ALPN "h2", the SVID's key and chain presented, the SVID's bundle as the trust
// anchors. Peer verification is NOT left to node:tls's accept/reject (its failure modes
// are OpenSSL strings, and it knows nothing of SPIFFE IDs): both ends complete the
// handshake with rejectUnauthorized: false and the connection owner MUST call
// verifyTlsPeer (peer-verify.ts) on 'secureConnection' / 'secureConnect' before any byte
// is read or written, destroying the socket when it fails. verifyTlsPeer also requires
// OpenSSL's verdict (socket.authorized, computed against the same bundle) to agree.

export const TUNNEL_ALPN = Object.freeze(['h2'])
export const TUNNEL_TLS_VERSION = 'TLSv1.3'

/** Context options of an SVID, e.g. for tls.Server#setSecureContext when the SVID rotates. */
export function svidContextOptions (svid: Svid): SecureContextOptions {
  return {
    key: svid.key,
    cert: svid.chain.join(''),
    ca: svid.bundle.join(''),
    minVersion: TUNNEL_TLS_VERSION,
    maxVersion: TUNNEL_TLS_VERSION
  }
}

// A SecureContext (an OpenSSL SSL_CTX holding the key, chain and roots: ≈36 KiB that V8
// does not see) is made on the first handshake that presents the SVID, in the thread
// that makes it, and lives as long as the Svid object does: until a rotation replaces it
// (a new object), or its identity leaves the node. An SVID that no session presents never
// gets one.
const contexts = new WeakMap<Svid, SecureContext>()
let made = 0

/** One SecureContext per SVID (SVIDs are immutable; a rotation is a new object). */
export function svidSecureContext (svid: Svid): SecureContext {
  let ctx = contexts.get(svid)
  if (ctx === undefined) {
    ctx = createSecureContext(svidContextOptions(svid))
    contexts.set(svid, ctx)
    made++
  }
  return ctx
}

/** SecureContexts svidSecureContext has made in this thread (/debug/tunnel, tests). */
export function secureContextsMade (): number {
  return made
}

/** Options for tls.createServer / http2.createSecureServer on the tunnel port. */
export function tunnelServerOptions (svid: Svid): TlsOptions {
  return {
    ...svidContextOptions(svid),
    ALPNProtocols: [...TUNNEL_ALPN],
    requestCert: true,
    rejectUnauthorized: false
  }
}

/** Options for tls.connect / http2.connect to a peer's tunnel port. */
export function tunnelClientOptions (svid: Svid): ConnectionOptions {
  return {
    secureContext: svidSecureContext(svid),
    ALPNProtocols: [...TUNNEL_ALPN],
    rejectUnauthorized: false,
    // Host names mean nothing in the mesh: the peer's SPIFFE ID is checked by verifyTlsPeer.
    checkServerIdentity: () => undefined
  }
}
