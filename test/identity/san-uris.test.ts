import t from 'tap'
import { type webcrypto, X509Certificate } from 'node:crypto'
import { createRootCa } from '../../src/controller/root-ca'
import { EC_P256, subtle } from '../../src/identity/ec-p256'
import { trustBundleOf, verifyPeer } from '../../src/identity/peer-verify'
import { parseAltNames, uriSans } from '../../src/identity/san-uris'
import { x509 } from '../../src/identity/x509'

// A peer's URI SANs are read from Node's own parse of its certificate
// (X509Certificate#subjectAltName, a documented text form), not from @peculiar/x509, so a
// data-path worker loads no X.509 library. Certificates with every awkward SAN (commas,
// quotes, a DNS name that spells ", URI:spiffe://…", non-ASCII, several URIs, none, an
// extension that does not decode) are made with @peculiar/x509 here and read both ways:
// the reader must find exactly the URIs the library finds, and refuse what it cannot read.

const HOUR = 3_600_000

async function certWith (names: x509.JsonGeneralName[] | Uint8Array | null, sign?: { root: Awaited<ReturnType<typeof createRootCa>> }): Promise<X509Certificate> {
  const keys = await subtle.generateKey(EC_P256, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const extensions: x509.Extension[] = names === null
    ? []
    : [names instanceof Uint8Array ? new x509.Extension('2.5.29.17', false, names) : new x509.SubjectAlternativeNameExtension(names)]
  const now = Date.now()
  const cert = sign === undefined
    ? await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=t', notBefore: new Date(now - HOUR), notAfter: new Date(now + HOUR), signingAlgorithm: EC_P256, keys, extensions })
    : await x509.X509CertificateGenerator.create({ serialNumber: '02', subject: '', issuer: sign.root.cert.subjectName, notBefore: new Date(now - HOUR), notAfter: new Date(now + HOUR), publicKey: keys.publicKey, signingKey: sign.root.signingKey, signingAlgorithm: EC_P256, extensions: [...extensions, new x509.BasicConstraintsExtension(false, undefined, true)] })
  return new X509Certificate(Buffer.from(cert.rawData))
}

/** The URIs @peculiar/x509 reads (what the agent used before). */
function libraryUris (cert: X509Certificate): string[] {
  const ext = new x509.X509Certificate(cert.raw).extensions.find((e) => e.type === '2.5.29.17')
  return ext === undefined ? [] : new x509.SubjectAlternativeNameExtension(ext.rawData).names.items.filter((n) => n.type === 'url').map((n) => n.value)
}

t.test('the URIs Node\'s parse gives are exactly the library\'s, whatever the names hold', async (t) => {
  const cases: Array<[string, x509.JsonGeneralName[]]> = [
    ['one SPIFFE ID', [{ type: 'url', value: 'spiffe://cluster.local/ns/app/sa/web' }]],
    ['a comma in the URI', [{ type: 'url', value: 'spiffe://cluster.local/ns/a,b/sa/c' }]],
    ['a quote and a second "URI:" inside one URI', [{ type: 'url', value: 'spiffe://td/ns/a", URI:spiffe://td/ns/x/sa/y' }]],
    ['a DNS name that spells another URI entry', [{ type: 'dns', value: 'x, URI:spiffe://cluster.local/ns/evil/sa/e' }]],
    ['DNS, then two URIs', [{ type: 'dns', value: 'web.app.svc' }, { type: 'url', value: 'spiffe://td/ns/a/sa/b' }, { type: 'url', value: 'spiffe://td/ns/c/sa/d' }]],
    ['an e-mail with a comma, then a URI with an apostrophe', [{ type: 'email', value: 'a,b@c' }, { type: 'url', value: "spiffe://td/ns/q'/sa/x" }]],
    ['non-ASCII', [{ type: 'url', value: 'spiffe://td/ns/é/sa/x' }]],
    ['a backslash', [{ type: 'url', value: 'spiffe://td/ns/a\\b/sa/x' }]],
    ['a control character', [{ type: 'url', value: 'spiffe://td/ns/a\nb/sa/x' }]],
    ['an IP address (colons), then a URI with a colon', [{ type: 'ip', value: '10.0.0.1' }, { type: 'ip', value: 'fd00::1' }, { type: 'url', value: 'spiffe://td/ns/a:b/sa/x' }]],
    ['an empty URI', [{ type: 'url', value: '' }]],
    ['no names at all', []]
  ]
  for (const [what, names] of cases) {
    const cert = await certWith(names)
    t.same(uriSans(cert), libraryUris(cert), `${what}: ${JSON.stringify(cert.subjectAltName)}`)
  }
  t.same(uriSans(await certWith(null)), [], 'no SAN extension: no URI')
  t.equal(uriSans(await certWith(Uint8Array.from([0x30, 0x03, 0x86, 0x05, 0x41]))), null, 'an extension that does not decode: unreadable (malformed)')
  t.equal(uriSans(await certWith(Uint8Array.from([0x04, 0x00]))), null, 'an extension that is not a GeneralNames: unreadable (malformed)')
})

t.test('the text grammar: entries, quoted values, and anything else refused', async (t) => {
  t.same(parseAltNames('DNS:a.b, URI:spiffe://td/ns/a/sa/b'), [{ type: 'DNS', value: 'a.b' }, { type: 'URI', value: 'spiffe://td/ns/a/sa/b' }])
  t.same(parseAltNames('DNS:"x\\u002c URI:spiffe://td/ns/e/sa/e"'), [{ type: 'DNS', value: 'x, URI:spiffe://td/ns/e/sa/e' }], 'a quoted value is one entry')
  t.same(parseAltNames('URI:"a\\"\\u002c URI:b", IP Address:::1'), [{ type: 'URI', value: 'a", URI:b' }, { type: 'IP Address', value: '::1' }])
  t.same(parseAltNames('othername:XmppAddr:a@b'), [{ type: 'othername', value: 'XmppAddr:a@b' }])
  t.same(parseAltNames(''), [])
  for (const bad of ['URI', 'URI:a,b', 'URI:"open', 'URI:"a" tail', 'URI:a, ', 'URI:a,URI:b', 'URI:"\\x"']) t.equal(parseAltNames(bad), null, `refused: ${JSON.stringify(bad)}`)
})

t.test('verifyPeer: a name that only spells a SPIFFE ID is no identity; two URIs are malformed', async (t) => {
  const root = await createRootCa('cluster.local', Date.now() - 86_400_000)
  const trust = trustBundleOf('cluster.local', [root.certPem])
  const good = await certWith([{ type: 'url', value: 'spiffe://cluster.local/ns/app/sa/web' }], { root })
  t.match(verifyPeer(good, trust), { ok: true, spiffeId: { uri: 'spiffe://cluster.local/ns/app/sa/web' } }, 'a certificate signed here with one URI SAN is accepted')
  const spelled = await certWith([{ type: 'dns', value: 'x, URI:spiffe://cluster.local/ns/app/sa/web' }], { root })
  t.match(verifyPeer(spelled, trust), { ok: false, reason: 'no-san' }, 'a DNS name spelling ", URI:spiffe://…" is a DNS name')
  const quoted = await certWith([{ type: 'url', value: 'spiffe://cluster.local/ns/app/sa/web", URI:spiffe://cluster.local/ns/app/sa/api' }], { root })
  t.match(verifyPeer(quoted, trust), { ok: false, reason: 'no-san' }, 'a URI spelling a second entry is one URI, and no SPIFFE ID')
  const two = await certWith([{ type: 'url', value: 'spiffe://cluster.local/ns/app/sa/web' }, { type: 'url', value: 'spiffe://cluster.local/ns/app/sa/api' }], { root })
  t.match(verifyPeer(two, trust), { ok: false, reason: 'malformed', detail: /one URI SAN, this one has 2/ })
  const garbled = await certWith(Uint8Array.from([0x30, 0x03, 0x86, 0x05, 0x41]), { root })
  t.match(verifyPeer(garbled, trust), { ok: false }, 'an undecodable SAN extension: refused (OpenSSL already fails it as an issued certificate)')
})
