import t from 'tap'
import { webcrypto } from 'node:crypto'
import { createCsr, MAX_CSR_PEM_BYTES, parseCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import { x509 } from '../../src/identity/x509'

// CSRs: the agent's are exactly what the CA accepts; the CA's parser is the edge for
// untrusted input and says what is wrong.

const WEB = spiffeIdOf('cluster.local', 'app', 'web')

async function csrWith (alg: any, sans: x509.JsonGeneralName[]): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg, extensions: sans.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(sans)] })
  return csr.toString('pem')
}

t.test("the agent's CSR: empty subject, one URI SAN, P-256; parses back to the identity and key", async (t) => {
  const key = await generateWorkloadKey()
  const pem = await createCsr(key, WEB)
  t.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----\n$/)
  const raw = new x509.Pkcs10CertificateRequest(pem)
  t.equal(raw.subject, '', 'no subject')
  const parsed = await parseCsr(pem)
  t.equal(parsed.spiffeId.uri, WEB.uri)
  t.ok(Buffer.from(parsed.publicKey.rawData).equals(key.spki), 'the key of the request')
  t.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/)
})

t.test('keys Istio agents use are accepted; weak ones are not', async (t) => {
  const rsa2048 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 }
  t.equal((await parseCsr(await csrWith(rsa2048, [{ type: 'url', value: WEB.uri }]))).spiffeId.uri, WEB.uri, 'RSA 2048')
  t.equal((await parseCsr(await csrWith({ name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }, [{ type: 'url', value: WEB.uri }]))).spiffeId.uri, WEB.uri, 'P-384')
  const rsa1024 = { ...rsa2048, modulusLength: 1024 }
  await t.rejects(parseCsr(await csrWith(rsa1024, [{ type: 'url', value: WEB.uri }])), { code: 'FERRY_ERR_CSR', message: /unsupported key rsa 1024 bits/ })
})

t.test('refusals say what is wrong', async (t) => {
  const ec = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const good = await createCsr(await generateWorkloadKey(), WEB)
  const cases: Array<[string, string | Promise<string>, RegExp]> = [
    ['empty', '', /the CSR is empty/],
    ['oversize', 'x'.repeat(MAX_CSR_PEM_BYTES + 1), /larger than/],
    ['two blocks', good + good, /found 2/],
    ['a certificate, not a CSR', good.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'), /found 0/],
    ['no SAN', csrWith(ec, []), /expected one subjectAltName extension, found 0/],
    ['DNS SAN', csrWith(ec, [{ type: 'dns', value: 'web.app.svc' }]), /exactly one URI, found dns/],
    ['two URIs', csrWith(ec, [{ type: 'url', value: WEB.uri }, { type: 'url', value: 'spiffe://cluster.local/ns/app/sa/api' }]), /found url, url/],
    ['not a workload ID', csrWith(ec, [{ type: 'url', value: 'spiffe://cluster.local/admin' }]), /not a workload SPIFFE ID: the path must be/]
  ]
  for (const [what, pem, why] of cases) await t.rejects(parseCsr(await pem), { code: 'FERRY_ERR_CSR', message: why }, what)
  // Flip a byte of the signature: the request no longer proves possession of the key.
  const der = Buffer.from(good.replace(/-----[A-Z ]+-----|\n/g, ''), 'base64')
  der[der.length - 5] ^= 0x01
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
  await t.rejects(parseCsr(tampered), { code: 'FERRY_ERR_CSR' }, 'tampered signature')
})

// Found by test/fuzz/identity.test.ts and test/fuzz/grpc-services.test.ts: a request whose
// key parameters are no curve name (the library decodes them on first read) threw the
// library's own error, which the CA answered as INTERNAL.
t.test('a public key the library cannot decode is a refusal, not an internal error', async (t) => {
  const pem = '-----BEGIN CERTIFICATE REQUEST-----\nMIH+MIGkAgEAMAAwWTATBgcqhkjOPQIBMggqhkjOPQMBBwNCAAR5PYq1RXeMABQq\nzfFsanbzMIzkJCI0KIeppSmlgvgPgUaTksxNViSiDDnrXxaCDnxG52aEcBHKHWhY\nnkVGJJE5oEIwQAYJKoZIhvcNAQkOMTMwMTAvBgNVHREEKDAmhiRzcGlmZmU6Ly9j\nbHVzdGVyLmxvY2FsL25zL2FwcC9zYS9zYTAwCgYIKoZIzj0EAwIDSQAwRgIhAOHm\nYZFtBTBYKyahz3MkoiNNrIMrHg7pUcM4+X674nw5AiEA14nvxFz25ju0VAXgyPDw\ndv8iFhChb1EipzXJy6RS27Y=\n-----END CERTIFICATE REQUEST-----\n'
  await t.rejects(parseCsr(pem), { code: 'FERRY_ERR_CSR', message: /^certificate signing request rejected: the public key cannot be read: / })
})
