import fc from 'fast-check'
import t from 'tap'
import { createCsr, parseCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { derToPem, pemBlocks } from '../../src/identity/pem'
import { parseAltNames } from '../../src/identity/san-uris'
import { formatSpiffeId, parseSpiffeId, spiffeIdOf, spiffeIdProblem, tryParseSpiffeId } from '../../src/identity/spiffe-id'
import { EC_P256, x509 } from '../../src/identity/x509'
import { anyText, fuzzParams, outcome, outcomeAsync, pathological, total } from '../helpers/fuzz'

// Identity parsers that read what a peer sends: the CA's CSR parser (src/identity/csr.ts,
// with its PEM splitting), SPIFFE IDs (a CSR's SAN, a peer certificate's URI), and Node's
// subjectAltName text of a peer certificate (san-uris.ts). Generators: CSRs made by the
// real generator for generated names and for SAN lists that are not one workload ID,
// their DER with bytes changed, random DER in PEM armour, and arbitrary text.

const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/)
const trustDomain = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/)
const saName = fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'))

t.test('parseCsr: any text is a parsed CSR or FERRY_ERR_CSR saying what is wrong', async (t) => {
  const keys = await Promise.all([1, 2].map(async () => await generateWorkloadKey()))
  const csrs = await Promise.all(keys.map(async (k, i) => await createCsr(k, spiffeIdOf('cluster.local', 'app', `sa${i}`))))
  const ders = csrs.map((c) => Buffer.from(c.replace(/-----[^-]+-----|\s/g, ''), 'base64'))
  const armour = (der: Uint8Array): string => derToPem(der, 'CERTIFICATE REQUEST')
  const input = fc.oneof(
    fc.tuple(fc.nat({ max: ders.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([i, flips]) => { const d = Buffer.from(ders[i]); for (const [at, v] of flips) d[at % d.length] = v; return armour(d) }),
    fc.tuple(fc.nat({ max: ders.length - 1 }), fc.nat()).map(([i, cut]) => armour(ders[i].subarray(0, cut % ders[i].length))),
    fc.uint8Array({ maxLength: 800 }).map(armour),
    fc.constantFrom(csrs[0] + csrs[1], csrs[0].replace('REQUEST', 'REQUEST X'), csrs[0].replace(/\n/g, '\r\n'), csrs[0] + 'x'.repeat(17_000), ''),
    anyText(300),
    pathological(['-----BEGIN CERTIFICATE REQUEST-----\n', 'A', 'AAAA\n', '-----END '])
  )
  await fc.assert(fc.asyncProperty(input, async (pem) => {
    const o = await outcomeAsync(['FERRY_ERR_CSR'], async () => await parseCsr(pem))
    if (o.ok && !o.value.spiffeId.uri.startsWith('spiffe://')) throw new Error(`parsed ${o.value.spiffeId.uri}`)
  }), fuzzParams(100))
  t.pass()
})

t.test('a CSR for a generated workload ID is accepted with that ID; any other SAN list is refused', async (t) => {
  const key = await generateWorkloadKey()
  const sanEntry = fc.oneof(
    fc.tuple(trustDomain, dnsLabel, saName).map(([td, ns, sa]) => ({ type: 'url' as const, value: `spiffe://${td}/ns/${ns}/sa/${sa}` })),
    fc.tuple(trustDomain, anyText(20)).map(([td, p]) => ({ type: 'url' as const, value: `spiffe://${td}/${p}` })),
    fc.constantFrom({ type: 'url' as const, value: 'https://example.org/' }, { type: 'dns' as const, value: 'web.app.svc' }, { type: 'ip' as const, value: '10.0.0.1' }, { type: 'email' as const, value: 'a@b.c' }, { type: 'url' as const, value: 'SPIFFE://cluster.local/ns/a/sa/b' })
  )
  await fc.assert(fc.asyncProperty(fc.oneof(
    fc.tuple(trustDomain, dnsLabel, saName).map(([td, ns, sa]) => ({ single: { td, ns, sa }, sans: null })),
    fc.array(sanEntry, { maxLength: 3 }).map((sans) => ({ single: null, sans }))
  ), async ({ single, sans }) => {
    if (single !== null) {
      const id = spiffeIdOf(single.td, single.ns, single.sa)
      const parsed = await parseCsr(await createCsr(key, id))
      if (parsed.spiffeId.uri !== id.uri) throw new Error(`${id.uri} parsed as ${parsed.spiffeId.uri}`)
      return
    }
    const req = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: { privateKey: key.privateKey, publicKey: key.publicKey },
      signingAlgorithm: EC_P256,
      extensions: sans!.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(sans!)]
    })
    const o = await outcomeAsync(['FERRY_ERR_CSR'], async () => await parseCsr(derToPem(req.rawData, 'CERTIFICATE REQUEST')))
    const one = sans!.length === 1 && sans![0].type === 'url' && spiffeIdProblem(sans![0].value) === null
    if (o.ok !== one) throw new Error(`SANs ${JSON.stringify(sans)}: ${o.ok ? 'accepted' : o.error.message}`)
    if (o.ok && o.value.spiffeId.uri !== sans![0].value) throw new Error(`parsed as ${o.value.spiffeId.uri}`)
  }), fuzzParams(30))
  t.pass()
})

t.test('SPIFFE IDs: parse or FERRY_ERR_SPIFFE_ID; what parses is canonical; generated IDs round-trip', async (t) => {
  const near = fc.oneof(
    fc.tuple(fc.constantFrom('spiffe://', 'SPIFFE://', 'spiffe:/', ''), fc.oneof(trustDomain, anyText(10)), fc.constantFrom('/ns/', '/NS/', '/ns//', '/'), fc.oneof(dnsLabel, anyText(8)), fc.constantFrom('/sa/', '/sa', '/sa//'), fc.oneof(saName, anyText(8)), fc.constantFrom('', '/', '?x', '#f', '/x'))
      .map((parts) => parts.join('')),
    anyText(100),
    pathological(['a.', 'a-', '/ns/a', 'a.b'])
  )
  fc.assert(fc.property(near, (uri) => {
    const o = outcome(['FERRY_ERR_SPIFFE_ID'], () => parseSpiffeId(uri))
    if (total(() => tryParseSpiffeId(uri) === null) === o.ok) throw new Error(`tryParseSpiffeId disagrees on ${uri}`)
    if (o.ok && formatSpiffeId(o.value) !== uri) throw new Error(`${uri} is not canonical`)
  }), fuzzParams(1500))
  fc.assert(fc.property(trustDomain, dnsLabel, saName, (td, ns, sa) => {
    const id = spiffeIdOf(td, ns, sa)
    if (parseSpiffeId(id.uri).uri !== id.uri) throw new Error(id.uri)
  }), fuzzParams(250))
  t.pass()
})

t.test('PEM blocks and subjectAltName text: total functions, promptly', async (t) => {
  fc.assert(fc.property(fc.oneof(anyText(300), pathological(['-----BEGIN CERTIFICATE-----\n', 'A', 'AAAA\r\n', '-----END CERTIFICATE-----'])), (text) => {
    for (const b of total(() => pemBlocks(text, 'CERTIFICATE'))) if (!b.startsWith('-----BEGIN CERTIFICATE-----\n')) throw new Error(b)
  }), fuzzParams(250))
  const entry = fc.tuple(fc.constantFrom('URI', 'DNS', 'IP Address', 'email'), fc.oneof(fc.webUrl(), anyText(20).map((s) => JSON.stringify(s)), anyText(20)))
  fc.assert(fc.property(fc.oneof(fc.array(entry, { maxLength: 4 }).map((es) => es.map(([k, v]) => `${k}:${v}`).join(', ')), anyText(100), pathological(['URI:"\\', 'URI:a, ', '"', ', '])), (text) => {
    const names = total(() => parseAltNames(text))
    if (names !== null && names.some((n) => typeof n.type !== 'string' || typeof n.value !== 'string')) throw new Error(text)
  }), fuzzParams(500))
  t.pass()
})
