import t from 'tap'
import { connect as tlsConnect } from 'node:tls'
import { tunnelClientOptions, TUNNEL_ALPN } from '../../src/identity/tls-options'
import type { Svid } from '../../src/identity/svid'
import { sniOf, type TunnelRefusal } from '../../src/tunnel'
import { testCa } from '../identity/certs'
import { echo, roundTrip, startPool, startServer } from './harness'
import { waitFor } from '../helpers/wait'

// Each way a peer can fail verification is refused before any stream, with its own
// reason reported: by the server for clients, by the pool for servers. A refused peer
// costs nothing to the others: a good client still gets through afterwards.

t.setTimeout(20_000)

const HOUR = 3_600_000

/**
 * A client with a certificate for `like`'s identity from another CA, that trusts our
 * roots (they are public): it completes the handshake, so only the server stands in its way.
 */
async function intruder (like: Svid): Promise<Svid> {
  const forged = await (await testCa()).svid(like.spiffeId)
  return { ...forged, bundle: like.bundle }
}

async function setup (t: Parameters<typeof startPool>[0]) {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const streams: string[] = []
  const srv = await startServer(t, { svids: [db], onStream: (req) => { streams.push(req.peerSpiffeId); echo()(req) } })
  const { pool, refusals } = startPool(t)
  const open = async (source: Svid, expected = db.spiffeId.uri, port = srv.port) =>
    await pool.open({ sourceSvid: () => source, expectedPeer: expected, node: { address: '127.0.0.1', port }, authority: '10.0.0.7:80' })
  return { ca, web, db, srv, pool, clientRefusals: refusals, streams, open }
}

t.test('the server refuses client certificates from another CA or expired, and says why', async (t) => {
  const r = await setup(t)
  const stranger = await intruder(r.web)
  const expired = await r.ca.svid('app/web', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })
  for (const [svid, reason, detail] of [[stranger, 'other-ca', /does not chain to the cluster.local trust bundle/], [expired, 'expired', /the certificate expired at/]] as const) {
    const before = r.srv.refusals.length
    if (reason === 'other-ca') {
      const err = await r.open(svid).then(() => null, (e: unknown) => e)
      t.match(err, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'session-closed', message: /may have refused our certificate/ }, `${reason}: the client only sees the session closed`)
    } else {
      // The pool never presents an expired certificate (below): a raw client does.
      const socket = tlsConnect({ ...tunnelClientOptions(svid), host: '127.0.0.1', port: r.srv.port, servername: sniOf(r.db.spiffeId) })
      socket.on('error', () => {})
      await new Promise((resolve) => socket.once('close', resolve))
    }
    await waitFor(() => r.srv.refusals.length > before, { what: 'the refusal' })
    t.match(r.srv.refusals[before], { side: 'server', stage: 'verify', reason, detail, servername: sniOf(r.db.spiffeId), localSpiffeId: r.db.spiffeId.uri, remote: /^127\.0\.0\.1:\d+$/ }, `${reason}: the server reports why`)
  }
  t.same(r.streams, [], 'no stream reached onStream')
  t.equal(r.srv.server.stats().sessionsAccepted, 0)
  t.equal(r.srv.server.stats().connectionsRefused, 2)
  t.equal(await roundTrip(await r.open(r.web), 'fine'), 'fine', 'a good client is unaffected')
  t.same(r.streams, [r.web.spiffeId.uri])
})

t.test('the server refuses a client that presents no certificate', async (t) => {
  const r = await setup(t)
  const socket = tlsConnect({ host: '127.0.0.1', port: r.srv.port, servername: sniOf(r.db.spiffeId), ALPNProtocols: [...TUNNEL_ALPN], rejectUnauthorized: false })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('close', resolve))
  t.match(r.srv.refusals, [{ side: 'server', stage: 'verify', reason: 'no-certificate', detail: /presented no certificate/ }])
})

t.test('the server refuses a client that names no identity, or one it does not serve', async (t) => {
  const r = await setup(t)
  const noSni = tlsConnect({ ...tunnelClientOptions(r.web), host: '127.0.0.1', port: r.srv.port })
  noSni.on('error', () => {})
  await new Promise((resolve) => noSni.once('close', resolve))
  t.match(r.srv.refusals.at(-1), { stage: 'handshake', reason: 'no-sni', servername: null })

  const err = await r.open(r.web, 'spiffe://cluster.local/ns/data/sa/elsewhere').then(() => null, (e: unknown) => e)
  t.match(err, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'handshake' }, 'the client sees the handshake fail')
  await waitFor(() => r.srv.refusals.length === 2, { what: 'refusal' })
  t.match(r.srv.refusals[1], { stage: 'handshake', reason: 'unknown-sni', servername: sniOf('spiffe://cluster.local/ns/data/sa/elsewhere') })
  t.match(r.clientRefusals, [{ side: 'client', stage: 'handshake', reason: 'handshake', peerSpiffeId: 'spiffe://cluster.local/ns/data/sa/elsewhere' }])
})

t.test('the pool refuses a server whose identity is not the expected one, from another CA, or expired', async (t) => {
  const r = await setup(t)
  const api = await r.ca.svid('app/api')
  const foreignDb = await (await testCa()).svid('data/db')
  const expiredDb = await r.ca.svid('data/db', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })
  const cases: Array<[Svid, string, RegExp]> = [
    [api, 'wrong-identity', /peer is spiffe:\/\/cluster.local\/ns\/app\/sa\/api, expected spiffe:\/\/cluster.local\/ns\/data\/sa\/db/],
    [foreignDb, 'other-ca', /does not chain to the cluster.local trust bundle/],
    [expiredDb, 'expired', /expired at/]
  ]
  for (const [presented, reason, detail] of cases) {
    // A server that answers every SNI with one certificate (misconfigured, or an impostor).
    // Ferry's own server never presents an expired certificate, so the expired one is a
    // server whose clock is in its certificate's lifetime.
    const streams: string[] = []
    const clock = reason === 'expired' ? { now: () => Date.now() - 1.5 * HOUR } : {}
    const bad = await startServer(t, { selectSvid: () => presented, onStream: (req) => { streams.push(req.authorityText); req.refuse(500, 'unreachable') }, ...clock })
    const err = await r.open(r.web, r.db.spiffeId.uri, bad.port).then(() => null, (e: unknown) => e)
    t.match(err, { code: 'FERRY_ERR_TUNNEL_PEER', reason, message: detail }, `${reason}: open() fails with the reason`)
    t.match(r.clientRefusals.at(-1), { side: 'client', stage: 'verify', reason, detail, peerSpiffeId: r.db.spiffeId.uri, localSpiffeId: r.web.spiffeId.uri, servername: sniOf(r.db.spiffeId) }, `${reason}: reported`)
    t.same(streams, [], `${reason}: no CONNECT was sent`)
  }
  t.equal(r.pool.stats().sessions, 0, 'refused sessions are not pooled')
})

t.test('an expired SVID is never presented: the pool does not dial with one, the server does not serve one', async (t) => {
  const r = await setup(t)
  const expiredWeb = await r.ca.svid('app/web', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })
  const err = await r.open(expiredWeb).then(() => null, (e: unknown) => e)
  t.match(err, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'certificate-expired', message: /expired at .* no successor yet/ }, 'the pool refuses to use it')
  t.equal(r.srv.server.stats().connectionsRefused, 0, 'and never dialled')
  const expiredDb = await r.ca.svid('data/db', { now: Date.now() - 2 * HOUR, ttlMs: HOUR })
  const stale = await startServer(t, { svids: [expiredDb], onStream: echo() })
  const failed = await r.open(r.web, r.db.spiffeId.uri, stale.port).then(() => null, (e: unknown) => e)
  t.match(failed, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'handshake' }, 'the handshake fails')
  await waitFor(() => stale.refusals.length === 1, { what: 'the server refusal' })
  t.match(stale.refusals[0], { side: 'server', stage: 'handshake', reason: 'certificate-expired', detail: /expired at .* no successor yet/ }, 'the server says why: its own certificate expired')
})

t.test('refusals are per connection: a flood of bad clients does not disturb a good stream', async (t) => {
  const r = await setup(t)
  const good = await r.open(r.web)
  const stranger = await intruder(r.web)
  // Ten intruders, each with its own pool (one pool would share one session among them).
  const bad = Array.from({ length: 10 }, async () => {
    const { pool } = startPool(t)
    return await pool.open({ sourceSvid: () => stranger, expectedPeer: r.db.spiffeId, node: { address: '127.0.0.1', port: r.srv.port }, authority: '10.0.0.7:80' }).then(() => 'opened', (e: { code: string }) => e.code)
  })
  good.write('a')
  t.same(await Promise.all(bad), Array(10).fill('FERRY_ERR_TUNNEL_CONNECT'), 'every intruder refused')
  t.equal(await roundTrip(good, 'b'), 'ab')
  await waitFor(() => r.srv.refusals.length === 10, { what: 'refusals' })
  t.ok(r.srv.refusals.every((x: TunnelRefusal) => x.reason === 'other-ca'))
})
