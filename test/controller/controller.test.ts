import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { CA_FILES } from '../../src/controller/ca-store'
import { CERT_BACKDATE_MS } from '../../src/controller/root-ca'
import { isFerryError } from '../../src/errors'
import { createCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import { x509 } from '../../src/identity/x509'
import { startCa, type CaHarness } from './harness'
import { waitFor } from '../helpers/wait'

// The CA over real gRPC + TLS on 127.0.0.1: what it issues, what it refuses and why, and
// that its root survives a restart.

const WEB = spiffeIdOf('cluster.local', 'app', 'web')
const DB = spiffeIdOf('cluster.local', 'data', 'db')

async function csrFor (uri: string): Promise<string> {
  const key = await generateWorkloadKey()
  return await createCsr(key, { ...WEB, uri })
}

async function refusal (p: Promise<unknown>): Promise<{ code: string, message: string }> {
  try {
    await p
  } catch (err) {
    if (isFerryError(err)) return { code: err.code, message: err.message }
    throw err
  }
  throw new Error('expected a refusal')
}

function refusedLines (h: CaHarness): Array<Record<string, unknown>> {
  return h.lines.filter((l) => l.msg === 'certificate request refused')
}

t.test('issues an SVID: URI SAN only, no CN, the right usages, chained to the root it also serves', async (t) => {
  const h = await startCa(t)
  const client = h.client('n1')
  const before = Date.now()
  const chain = await client.createCertificate(await csrFor(WEB.uri), 600)
  t.equal(chain.length, 2, 'leaf and root')
  t.equal(chain[1], h.controller.rootCertPem, 'root last')
  const leaf = new X509Certificate(chain[0])
  const root = new X509Certificate(chain[1])
  t.ok(leaf.verify(root.publicKey) && leaf.checkIssued(root), 'signed by the root')
  t.equal(leaf.subject, undefined, 'empty subject: no common name')
  t.equal(leaf.subjectAltName, `URI:${WEB.uri}`, 'only the URI SAN')
  t.equal(leaf.ca, false)
  const p = new x509.X509Certificate(chain[0])
  const ku = p.getExtension(x509.KeyUsagesExtension)
  t.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment)
  t.ok(ku?.critical)
  t.same([...(p.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort())
  t.ok(p.getExtension(x509.SubjectAlternativeNameExtension)?.critical, 'SAN critical (empty subject)')
  // Valid from a minute before issuance (CERT_BACKDATE_MS, for clock skew); the lifetime
  // asked for is counted from issuance.
  const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom) - CERT_BACKDATE_MS
  t.ok(lifetime <= 600_000 && lifetime >= 599_000, `validity as requested (${lifetime} ms) after the backdating`)
  t.ok(Date.parse(leaf.validFrom) <= Date.now() - CERT_BACKDATE_MS && Date.parse(leaf.validFrom) >= before - CERT_BACKDATE_MS - 1000, 'valid from a minute before now')

  const longer = new X509Certificate((await client.createCertificate(await csrFor(WEB.uri), 7 * 86400))[0])
  t.equal(Date.parse(longer.validTo) - Date.parse(longer.validFrom), 3_600_000 + CERT_BACKDATE_MS, 'capped at --cert-ttl (1h)')
  const dflt = new X509Certificate((await client.createCertificate(await csrFor(WEB.uri), 0))[0])
  t.equal(Date.parse(dflt.validTo) - Date.parse(dflt.validFrom), 3_600_000 + CERT_BACKDATE_MS, '0 asks for the default (the maximum)')

  const bundle = await client.getTrustBundle()
  t.same(bundle, { trustDomain: 'cluster.local', roots: [h.controller.rootCertPem] })
  t.ok(h.lines.some((l) => l.msg === 'certificate issued' && l.node === 'n1' && l.identity === WEB.uri), 'issuance logged')
})

t.test('refuses the identity of a pod on another node: PERMISSION_DENIED, logged with node, identity and reason', async (t) => {
  const h = await startCa(t)
  const r = await refusal(h.client('n1').createCertificate(await csrFor(DB.uri), 600))
  t.equal(r.code, 'FERRY_ERR_CA_REFUSED')
  t.match(r.message, /PERMISSION_DENIED: FERRY_ERR_AUTHZ: node n1 may not obtain spiffe:\/\/cluster.local\/ns\/data\/sa\/db/)
  t.match(r.message, /such pods run on n2/)
  const [line] = refusedLines(h)
  t.match(line, { node: 'n1', identity: DB.uri, code: 'FERRY_ERR_AUTHZ', status: 'PERMISSION_DENIED', reason: /no pod of service account db in namespace data is scheduled on node n1/ })

  const unknown = await refusal(h.client('n1').createCertificate(await csrFor('spiffe://cluster.local/ns/app/sa/ghost'), 600))
  t.match(unknown.message, /no such pod in the cluster/)
  const otherTd = await refusal(h.client('n1').createCertificate(await csrFor('spiffe://evil.example/ns/app/sa/web'), 600))
  t.match(otherTd.message, /PERMISSION_DENIED: .*trust domain "evil.example" is not this CA's/)
})

t.test('refuses bad credentials with UNAUTHENTICATED, before looking at the CSR', async (t) => {
  const h = await startCa(t)
  const bad = await refusal(h.client('n1', { token: 'x'.repeat(43) }).createCertificate('garbage', 600))
  t.equal(bad.code, 'FERRY_ERR_CA_REFUSED')
  t.match(bad.message, /UNAUTHENTICATED: FERRY_ERR_AUTHN: unknown bearer token/)
  const [line] = refusedLines(h)
  t.match(line, { code: 'FERRY_ERR_AUTHN', status: 'UNAUTHENTICATED', reason: 'unknown bearer token' })
  t.notOk('identity' in line, 'the CSR was not read')
  const malformed = await refusal(h.client('n1', { token: 'a b' }).createCertificate(await csrFor(WEB.uri), 600))
  t.match(malformed.message, /UNAUTHENTICATED: .*not "Bearer <token>"/)
})

t.test('refuses garbage and off-policy CSRs with INVALID_ARGUMENT', async (t) => {
  const h = await startCa(t)
  const client = h.client('n1')
  t.match((await refusal(client.createCertificate('not a csr', 600))).message, /INVALID_ARGUMENT: FERRY_ERR_CSR: .*expected one PEM "CERTIFICATE REQUEST" block, found 0/)
  const junk = '-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n'
  t.match((await refusal(client.createCertificate(junk, 600))).message, /INVALID_ARGUMENT: FERRY_ERR_CSR: .*not a PKCS#10 request/)

  const key = await generateWorkloadKey()
  const dns = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: WEB.uri }, { type: 'dns', value: 'web.app.svc' }])]
  })
  t.match((await refusal(client.createCertificate(dns.toString('pem'), 600))).message, /subjectAltName must be exactly one URI, found url, dns/)

  // A CSR signed by another key than the one it carries: the caller does not hold the key.
  const other = await generateWorkloadKey()
  const forged = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: other.privateKey, publicKey: key.publicKey },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: WEB.uri }])]
  })
  t.match((await refusal(client.createCertificate(forged.toString('pem'), 600))).message, /the signature does not match the public key/)
  t.equal(refusedLines(h).length, 4)
  t.ok(refusedLines(h).every((l) => l.node === 'n1' && l.code === 'FERRY_ERR_CSR'))
})

t.test('follows the cluster file: a pod moving to a node makes its identity available there', async (t) => {
  const h = await startCa(t)
  await refusal(h.client('n1').createCertificate(await csrFor(DB.uri), 600))
  h.writePods([{ name: 'db', namespace: 'data', node: 'n1', serviceAccountName: 'db' }])
  await waitFor(async () => (await h.client('n1').createCertificate(await csrFor(DB.uri), 600)).length > 0, { timeoutMs: 5000, intervalMs: 50, what: 'db to be signable on n1' })
  t.match((await refusal(h.client('n1').createCertificate(await csrFor(WEB.uri), 600))).message, /PERMISSION_DENIED/, 'web is gone')
  h.writePods([{ name: 'db', namespace: 'data', node: 'n1', serviceAccountName: 'db', phase: 'Succeeded' }])
  const refused = await waitFor(async () => await h.client('n1').createCertificate(await csrFor(DB.uri), 600).then(() => null, (err: Error) => err.message),
    { timeoutMs: 5000, intervalMs: 50, what: 'db to be refused on n1' })
  t.match(refused, /PERMISSION_DENIED/, 'a finished pod no longer counts')
})

t.test('persists its root: 0700 dir, 0600 key; a restart reuses it and earlier certificates still verify', async (t) => {
  const h = await startCa(t)
  const first = await h.client('n1').createCertificate(await csrFor(WEB.uri), 600)
  t.equal(statSync(h.dataDir).mode & 0o777, 0o700)
  t.equal(statSync(join(h.dataDir, CA_FILES.key)).mode & 0o777, 0o600)
  t.equal(statSync(join(h.dataDir, CA_FILES.cert)).mode & 0o777, 0o644)
  const root1 = h.controller.rootCertPem
  t.ok(h.lines.some((l) => l.msg === 'created a new CA root'))
  await h.restart()
  t.equal(h.controller.rootCertPem, root1, 'same root after restart')
  t.ok(h.lines.some((l) => l.msg === 'loaded the CA root'))
  const second = await h.client('n1').createCertificate(await csrFor(WEB.uri), 600)
  const root = new X509Certificate(second[1])
  t.ok(new X509Certificate(first[0]).verify(root.publicKey), 'a certificate from before the restart verifies against the root after it')
})
