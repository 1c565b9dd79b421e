import type { X509Certificate } from 'node:crypto'

// The URI subject alternative names of a certificate, read from Node's own parse of it
// (OpenSSL's, the parser that already checked the chain on the TLS connection) rather
// than from a second X.509 library: a data-path worker then loads none (@peculiar/x509
// is ≈200 modules and ≈4.5 MiB per worker thread; the main thread keeps it for CSRs).
//
// X509Certificate#subjectAltName prints the names as "TYPE:value" entries joined by
// ", ". Node prints a value as a JSON string literal whenever it could be misread — one
// holding a comma, a quote, an apostrophe, a backslash or a control character, or any
// byte outside printable ASCII in a type that is not UTF-8 (URIs are IA5Strings) — and
// as it is otherwise, so an unquoted value never holds a comma (Node's documentation of
// the property; CVE-2021-44532). It is undefined without the extension and null when
// OpenSSL cannot decode it.

/** The URI SANs, in order; [] without any; null when the names cannot be read (malformed). */
export function uriSans (cert: X509Certificate): string[] | null {
  let text: string | null | undefined
  try {
    text = cert.subjectAltName as string | null | undefined
  } catch {
    return null
  }
  if (text === undefined) return []
  if (typeof text !== 'string') return null
  const names = parseAltNames(text)
  return names === null ? null : names.filter((n) => n.type === 'URI').map((n) => n.value)
}

/** Node's subjectAltName text as (type, value) pairs; null when it does not follow the grammar above. */
export function parseAltNames (text: string): Array<{ type: string, value: string }> | null {
  const names: Array<{ type: string, value: string }> = []
  let i = 0
  while (i < text.length) {
    const colon = text.indexOf(':', i)
    if (colon < 0) return null
    const type = text.slice(i, colon)
    i = colon + 1
    let value: string
    if (text[i] === '"') {
      const end = closingQuote(text, i)
      if (end < 0) return null
      try {
        value = JSON.parse(text.slice(i, end + 1)) as string
      } catch {
        return null
      }
      i = end + 1
    } else {
      const next = text.indexOf(', ', i)
      const end = next < 0 ? text.length : next
      value = text.slice(i, end)
      if (value.includes(',')) return null
      i = end
    }
    names.push({ type, value })
    if (i === text.length) break
    if (!text.startsWith(', ', i)) return null
    i += 2
    if (i === text.length) return null
  }
  return names
}

/** The index of the quote that ends the JSON string literal opened at `open`, or -1. */
function closingQuote (text: string, open: number): number {
  for (let j = open + 1; j < text.length; j++) {
    const c = text[j]
    if (c === '\\') j++
    else if (c === '"') return j
  }
  return -1
}
