// PEM text helpers. Certificates travel as PEM strings everywhere in Ferry (the Istio CA
// API carries PEM, node:tls takes PEM); these turn DER into PEM and split bundles.

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g

/** PEM armour around DER bytes, 64 columns, trailing newline. */
export function derToPem (der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`
}

/** The blocks of one label in a PEM text, each normalised to end in a newline; other text is ignored. */
export function pemBlocks (text: string, label: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] === label) out.push(derToPem(Buffer.from(m[2].replace(/\s+/g, ''), 'base64'), label))
  }
  return out
}

/** Splits concatenated certificates (a bundle file, a chain) into one PEM string each. */
export function splitCertificates (text: string): string[] {
  return pemBlocks(text, 'CERTIFICATE')
}
