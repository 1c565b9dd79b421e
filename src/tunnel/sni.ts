import { createHash } from 'node:crypto'
import type { SpiffeId } from '../identity/spiffe-id'

// The TLS server name (SNI) a tunnel client sends to say which identity it wants the
// destination node to present. One node proxy serves the identities of all its pods on
// one port, so it picks the certificate by SNI.
//
//   sni(id) = base32(sha256(id.uri)[0..20]) + ".id.ferry.internal"
//
//   - base32 is RFC 4648's alphabet, lowercase, unpadded: 20 bytes → exactly 32 characters,
//     a valid DNS label (SNI must be a host name; a SPIFFE ID has "/" and may be 2 KiB).
//   - 160 bits: a collision would only make the server present the wrong certificate,
//     which the client's verifyTlsPeer(expected) then refuses, so it fails closed.
//   - The hash keeps identities out of the plaintext ClientHello but is no secret: names
//     are guessable and a passive observer can hash candidates. TLS 1.3 encrypts the
//     certificates; only ECH would hide the SNI.
//   - ".id.ferry.internal": ".internal" is reserved for private use (ICANN, 2024), and
//     "id" versions the encoding (a future one would use another label).

const SUFFIX = '.id.ferry.internal'
const HASH_BYTES = 20
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const LABEL = /^[a-z2-7]{32}$/

/** The SNI naming `id` (a SpiffeId or its canonical URI). */
export function sniOf (id: SpiffeId | string): string {
  const uri = typeof id === 'string' ? id : id.uri
  return base32(createHash('sha256').update(uri).digest().subarray(0, HASH_BYTES)) + SUFFIX
}

/** True when `name` has the form sniOf produces (says nothing about which identity). */
export function isTunnelSni (name: string): boolean {
  return name.length === 32 + SUFFIX.length && name.endsWith(SUFFIX) && LABEL.test(name.slice(0, 32))
}

/**
 * SNI → identity, for the server's selectSvid: the agent adds an identity when the first
 * pod with it is enrolled and removes it with the last, next to CertificateManager.add/remove.
 *
 *   const names = new SniIndex()
 *   const selectSvid = (sni) => { const id = names.identityOf(sni); return id === null ? null : certs.current(id) }
 */
export class SniIndex {
  private readonly byName = new Map<string, string>()

  add (id: SpiffeId | string): string {
    const uri = typeof id === 'string' ? id : id.uri
    const name = sniOf(uri)
    this.byName.set(name, uri)
    return name
  }

  delete (id: SpiffeId | string): void {
    this.byName.delete(sniOf(typeof id === 'string' ? id : id.uri))
  }

  identityOf (sni: string): string | null {
    return this.byName.get(sni) ?? null
  }

  get size (): number { return this.byName.size }
}

function base32 (bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31]
  return out
}
