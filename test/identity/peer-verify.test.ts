import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { generateWorkloadKey } from '../../src/identity/keys'
import { verifyPeer, verifyTlsPeer, type PeerVerification, type TrustBundle } from '../../src/identity/peer-verify'
import type { Svid } from '../../src/identity/svid'
import { tunnelClientOptions, tunnelServerOptions } from '../../src/identity/tls-options'
import { spiffeIdFor, testCa } from './certs'

// verifyPeer names the first thing wrong with a peer's certificate, with a distinct
// reason for each; the TLS helpers give TLS 1.3 + h2 and leave the verdict to it, on
// real node:tls sockets over 127.0.0.1.

const HOUR = 3_600_000
const leafOf = (svid: Svid): X509Certificate => new X509Certificate(svid.chain[0])

t.test('verifyPeer: accepts a good SVID and rejects each fault with its own reason', async (t) => {
  const ca = await testCa()
  const other = await testCa()
  const web = await ca.svid('app/web')
  const ok = verifyPeer(leafOf(web), ca.trust, { expected: web.spiffeId.uri })
  t.match(ok, { ok: true, spiffeId: { uri: 'spiffe://cluster.local/ns/app/sa/web' } })
  t.match(verifyPeer(leafOf(web), ca.trust, { expected: ['spiffe://cluster.local/ns/app/sa/x', web.spiffeId.uri] }), { ok: true }, 'one of several expected')
  t.match(verifyPeer(leafOf(web), ca.trust), { ok: true }, 'no expectation: any identity of the trust domain')

  const cases: Array<[string, PeerVerification, string, RegExp]> = [
    ['none', verifyPeer(null, ca.trust), 'no-certificate', /presented no certificate/],
    ['other CA', verifyPeer(leafOf(await other.svid('app/web')), ca.trust), 'other-ca', /does not chain to the cluster.local trust bundle/],
    ['expired', verifyPeer(leafOf(await ca.svid('app/web', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })), ca.trust), 'expired', /the certificate expired at/],
    ['not yet valid', verifyPeer(leafOf(await ca.svid('app/web', { now: Date.now() + HOUR })), ca.trust), 'not-yet-valid', /valid from/],
    ['wrong identity', verifyPeer(leafOf(web), ca.trust, { expected: 'spiffe://cluster.local/ns/app/sa/api' }), 'wrong-identity', /peer is spiffe:\/\/cluster.local\/ns\/app\/sa\/web, expected spiffe:\/\/cluster.local\/ns\/app\/sa\/api/],
    ['root as leaf', verifyPeer(ca.trust.roots[0], ca.trust), 'malformed', /CA certificate/]
  ]
  // A certificate of this CA with no URI SAN (a DNS name only).
  const key = await generateWorkloadKey()
  const dnsOnly = await ca.issuer.issueServing(key.spki, ['web.app.svc'], HOUR, Date.now())
  cases.push(['no SAN', verifyPeer(new X509Certificate(dnsOnly.pem), ca.trust), 'no-san', /no URI SAN/])
  // A certificate of another trust domain, chained to a bundle that is (wrongly) trusted for ours.
  const foreign = await testCa('other.example')
  const foreignTrust: TrustBundle = { trustDomain: 'cluster.local', roots: foreign.trust.roots }
  cases.push(['wrong trust domain', verifyPeer(leafOf(await foreign.svid('app/web')), foreignTrust), 'wrong-trust-domain', /not of trust domain cluster.local/])

  for (const [what, verdict, reason, detail] of cases) t.match(verdict, { ok: false, reason, detail }, what)
  t.equal(new Set(cases.map((c) => c[2])).size, cases.length, 'every fault has its own reason')
})

t.test('verifyPeer follows presented intermediates but only to a bundle root', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const otherRoot = (await testCa()).trust.roots[0]
  t.match(verifyPeer({ leaf: leafOf(web), intermediates: [otherRoot, ca.trust.roots[0]] }, ca.trust), { ok: true })
  const other = await testCa()
  const stranger = await other.svid('app/web')
  t.match(verifyPeer({ leaf: leafOf(stranger), intermediates: [other.trust.roots[0]] }, ca.trust), { ok: false, reason: 'other-ca' }, "a presented root is not a trust anchor")
})

interface Handshake { server: PeerVerification, client: PeerVerification, alpn: string | false | null, protocol: string | null, echoed: string }

/** A real mutual-TLS handshake between two node:tls sockets using the tunnel options. */
async function handshake (serverSvid: Svid, clientSvid: Svid, opts: { serverTrust: TrustBundle, clientTrust: TrustBundle, serverExpects?: string, clientExpects?: string }): Promise<Handshake> {
  let serverVerdict: PeerVerification | undefined
  const server = createServer(tunnelServerOptions(serverSvid), (socket: TLSSocket) => {
    serverVerdict = verifyTlsPeer(socket, opts.serverTrust, { expected: opts.serverExpects })
    if (!serverVerdict.ok) { socket.destroy(); return }
    socket.pipe(socket)
  })
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const socket = connect({ ...tunnelClientOptions(clientSvid), host: '127.0.0.1', port: (server.address() as AddressInfo).port })
    socket.on('error', () => {})
    await once(socket, 'secureConnect')
    const client = verifyTlsPeer(socket, opts.clientTrust, { expected: opts.clientExpects })
    let echoed = ''
    if (client.ok) {
      socket.write('ping')
      socket.on('data', (d: Buffer) => { echoed += d.toString() })
      await Promise.race([once(socket, 'close'), new Promise((resolve) => { const i = setInterval(() => { if (echoed === 'ping' || socket.destroyed) { clearInterval(i); resolve(null) } }, 5) })])
    }
    // The server's verdict comes once it has the client's last flight (TLS 1.3: after the
    // client's secureConnect), so wait for it before closing.
    for (let i = 0; i < 400 && serverVerdict === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    const result = { server: serverVerdict as PeerVerification, client, alpn: socket.alpnProtocol, protocol: socket.getProtocol(), echoed }
    socket.destroy()
    return result
  } finally {
    server.close()
  }
}

t.test('TLS: mutual authentication with SPIFFE IDs over TLS 1.3 and ALPN h2', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const api = await ca.svid('app/api')
  const h = await handshake(web, api, { serverTrust: ca.trust, clientTrust: ca.trust, serverExpects: api.spiffeId.uri, clientExpects: web.spiffeId.uri })
  t.match(h.client, { ok: true, spiffeId: { uri: web.spiffeId.uri } }, 'the client sees the server as web')
  t.match(h.server, { ok: true, spiffeId: { uri: api.spiffeId.uri } }, 'the server sees the client as api')
  t.equal(h.protocol, 'TLSv1.3')
  t.equal(h.alpn, 'h2')
  t.equal(h.echoed, 'ping', 'bytes flow once both ends are verified')
})

t.test('TLS: a client certificate from another CA is refused by the server as other-ca', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const intruder = await (await testCa()).svid('app/api')
  const h = await handshake(web, intruder, { serverTrust: ca.trust, clientTrust: ca.trust })
  t.match(h.server, { ok: false, reason: 'other-ca', detail: /does not chain to the cluster.local trust bundle/ }, 'the server refuses it')
  t.equal(h.echoed, '')
})

t.test('TLS: the client refuses a server of the wrong identity and an expired server', async (t) => {
  const ca = await testCa()
  const api = await ca.svid('app/api')
  const web = await ca.svid('app/web')
  const wrong = await handshake(web, api, { serverTrust: ca.trust, clientTrust: ca.trust, clientExpects: spiffeIdFor('cluster.local', 'data/db').uri })
  t.match(wrong.client, { ok: false, reason: 'wrong-identity', detail: /peer is spiffe:\/\/cluster.local\/ns\/app\/sa\/web/ })
  const stale = await ca.svid('app/web', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })
  const expired = await handshake(stale, api, { serverTrust: ca.trust, clientTrust: ca.trust })
  t.match(expired.client, { ok: false, reason: 'expired' })
})

t.test('TLS: a client that presents no certificate is refused as no-certificate', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  let verdict: PeerVerification | undefined
  const server = createServer(tunnelServerOptions(web), (socket: TLSSocket) => {
    verdict = verifyTlsPeer(socket, ca.trust)
    socket.destroy()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: web.bundle.join(''), ALPNProtocols: ['h2'], checkServerIdentity: () => undefined })
  socket.on('error', () => {})
  await once(socket, 'secureConnect')
  for (let i = 0; i < 400 && verdict === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  socket.destroy()
  t.match(verdict, { ok: false, reason: 'no-certificate' })
})
