import t from 'tap'
import { constants } from 'node:http2'
import { sniOf, type TunnelStream } from '../../src/tunnel'
import { testCa } from '../identity/certs'
import { echo, rawSession, roundTrip, startPool, startServer, statusOf } from './harness'
import { waitFor } from '../helpers/wait'

// A session is only as good as the certificates it was made with. When either end's
// certificate expires — or this end's has been replaced by a rotation — the session
// takes no new stream (GOAWAY; a CONNECT that still arrives is refused with
// REFUSED_STREAM, which a client retries on a new session), its open streams run to
// their end, and then it closes.
//
// Certificates of a few seconds, from the test CA (X.509 counts in whole seconds).

t.setTimeout(30_000)

/** Resolves after `svid` has expired (now > notAfter). */
async function pastExpiry (notAfter: number): Promise<void> {
  await waitFor(() => Date.now() > notAfter + 20, { timeoutMs: notAfter - Date.now() + 5000, what: 'the certificate to expire' })
}

t.test('the server\'s certificate expires: no new stream on the session, the open one finishes, then the session closes', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db', { ttlMs: 2000 })
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  const raw = await rawSession(t, srv.port, web, db.spiffeId.uri)
  const open = raw.request({ ':method': 'CONNECT', ':authority': '10.0.0.7:80' }, { endStream: false })
  open.on('error', () => {})
  await new Promise((resolve) => open.once('response', resolve))
  open.write('before expiry, ')
  const goaway = new Promise<number>((resolve) => raw.once('goaway', resolve))
  await pastExpiry(db.notAfter)
  t.equal(await goaway, constants.NGHTTP2_NO_ERROR, 'GOAWAY at expiry')
  t.throws(() => raw.request({ ':method': 'CONNECT', ':authority': '10.0.0.7:80' }), { code: 'ERR_HTTP2_GOAWAY_SESSION' }, 'the client may open no new stream on the session')
  t.equal(srv.server.stats().sessions, 1, 'the session lives on while its stream does')
  const echoed: Buffer[] = []
  open.on('data', (d: Buffer) => echoed.push(d))
  const ended = new Promise((resolve) => open.once('end', resolve))
  open.end('after expiry')
  await ended
  t.equal(Buffer.concat(echoed).toString(), 'before expiry, after expiry', 'the open stream ran to its end, byte-exact')
  await waitFor(() => srv.server.stats().sessions === 0, { what: 'the session to close' })
  t.pass('closed once its last stream ended')
})

t.test('the peer\'s certificate expires mid-session: the same, on both ends of a pooled session', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web', { ttlMs: 2000 })
  const db = await ca.svid('data/db')
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  const { pool } = startPool(t)
  const s: TunnelStream = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  s.write('started, ')
  await pastExpiry(web.notAfter)
  await waitFor(() => pool.stats().draining === 1, { what: 'the pool\'s session to drain' })
  t.same(pool.stats(), { sessions: 1, draining: 1, streams: 1, keys: 1 }, 'the client\'s session drains at its own certificate\'s expiry')
  const err = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' }).then(() => null, (e: unknown) => e)
  t.match(err, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'certificate-expired' }, 'no new stream with the expired certificate, on any session')
  t.equal(await roundTrip(s, 'finished'), 'started, finished', 'the open stream finishes')
  await waitFor(() => pool.stats().sessions === 0 && srv.server.stats().sessions === 0, { what: 'both ends to close the session' })
  t.pass('and the session closes on both ends')
})

t.test('a client whose certificate expired mid-session gets no new stream from the server: an idle session is closed at expiry', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web', { ttlMs: 2000 })
  const db = await ca.svid('data/db')
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  // A raw client would keep using its session after its certificate expired (the pool would not).
  const raw = await rawSession(t, srv.port, web, db.spiffeId.uri)
  t.equal(await statusOf(raw, { ':method': 'CONNECT', ':authority': '10.0.0.7:80' }), 200, 'served while valid')
  const goaway = new Promise((resolve) => raw.once('goaway', resolve))
  const closed = new Promise((resolve) => raw.once('close', resolve))
  await pastExpiry(web.notAfter)
  await goaway
  await closed
  t.pass('GOAWAY, and the session (with no stream left) closed')
  t.equal(srv.server.stats().sessions, 0)
  t.equal(srv.server.stats().sessionsAccepted, 1)
})

t.test('the server\'s certificate is rotated: its sessions take no new stream, so the next open gets a session with the new certificate', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db1 = await ca.svid('data/db')
  let current = db1
  const srv = await startServer(t, { selectSvid: (sni) => sni === sniOf(db1.spiffeId) ? current : null, onStream: echo() })
  const { pool } = startPool(t)
  const open = async (): Promise<TunnelStream> => await pool.open({ sourceSvid: () => web, expectedPeer: db1.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  const before = await open()
  before.write('old session, ')
  t.equal(before.peerCertSerial, db1.serial)
  current = await ca.svid('data/db')
  // Only the server rotated: the pool has no reason of its own to leave the session.
  const after = await open()
  // The CONNECT went to the old session first, was refused (REFUSED_STREAM) and retried.
  t.equal(after.peerCertSerial, current.serial, 'the next stream is on a session presenting the new certificate')
  t.equal(srv.server.stats().sessionsAccepted, 2, 'a new session')
  t.equal(await roundTrip(after, 'new'), 'new')
  t.equal(await roundTrip(before, 'still fine'), 'old session, still fine', 'the stream on the old session finished')
  await waitFor(() => srv.server.stats().sessions === 1 && pool.stats().sessions === 1, { what: 'the old session to close' })
})
