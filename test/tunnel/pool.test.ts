import t from 'tap'
import type { Svid } from '../../src/identity/svid'
import { type TunnelPool, type TunnelRequest, type TunnelStream } from '../../src/tunnel'
import { testCa } from '../identity/certs'
import { echo, roundTrip, startPool, startServer, tcpHop } from './harness'
import { waitFor } from '../helpers/wait'
import { drain } from '../helpers/net'

/** A CA and the two identities most cases use: the client (app/web) and the server (data/db). */
async function webAndDb (): Promise<{ web: Svid, db: Svid }> {
  const ca = await testCa()
  return { web: await ca.svid('app/web'), db: await ca.svid('data/db') }
}

// The pool shares one verified session among concurrent opens of one key (source
// identity, destination identity, node), opens more when the server's stream limit is
// reached, and replaces sessions that went away: idle, GOAWAY, or dead.

t.setTimeout(20_000)

function opener (pool: TunnelPool, source: Svid, expected: string, port: number) {
  return async (authority = '10.0.0.7:80'): Promise<TunnelStream> =>
    await pool.open({ sourceSvid: () => source, expectedPeer: expected, node: { address: '127.0.0.1', port }, authority })
}

t.test('20 concurrent connections of one key share one TLS session', async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  const { pool } = startPool(t)
  const open = opener(pool, web, db.spiffeId.uri, srv.port)
  const streams = await Promise.all(Array.from({ length: 20 }, async (_, i) => await open(`10.0.0.7:${8000 + i}`)))
  t.equal(pool.stats().sessions, 1, 'one pooled session')
  t.equal(pool.stats().streams, 20, 'carrying 20 streams at once')
  t.equal(srv.server.stats().sessionsAccepted, 1, 'the server verified one TLS connection')
  t.equal(srv.server.stats().streams, 20)
  const answers = await Promise.all(streams.map(async (s, i) => await roundTrip(s, `conn ${i}`)))
  t.same(answers, streams.map((_, i) => `conn ${i}`), 'each stream got its own bytes back')
  await waitFor(() => pool.stats().streams === 0, { what: 'streams closed' })
  t.equal(pool.stats().sessions, 1, 'the session stays for the next opens')
  await roundTrip(await open(), 'again')
  t.equal(srv.server.stats().sessionsAccepted, 1, 'and is reused')
})

t.test('another destination identity on the same node, or another source identity, is another session', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const api = await ca.svid('app/api')
  const db = await ca.svid('data/db')
  const cache = await ca.svid('data/cache')
  const seen: TunnelRequest[] = []
  const srv = await startServer(t, { svids: [db, cache], onStream: echo(seen) })
  const { pool } = startPool(t)
  await roundTrip(await opener(pool, web, db.spiffeId.uri, srv.port)(), 'a')
  await roundTrip(await opener(pool, web, cache.spiffeId.uri, srv.port)(), 'b')
  await roundTrip(await opener(pool, api, db.spiffeId.uri, srv.port)(), 'c')
  await roundTrip(await opener(pool, web, db.spiffeId.uri, srv.port)(), 'd')
  t.equal(srv.server.stats().sessionsAccepted, 3, 'web→db, web→cache, api→db')
  t.equal(pool.stats().keys, 3)
  t.same(seen.map((r) => [r.peerSpiffeId, r.localSpiffeId]), [
    [web.spiffeId.uri, db.spiffeId.uri],
    [web.spiffeId.uri, cache.spiffeId.uri],
    [api.spiffeId.uri, db.spiffeId.uri],
    [web.spiffeId.uri, db.spiffeId.uri]
  ], 'the server presented the identity each SNI named')
})

t.test("the server's MAX_CONCURRENT_STREAMS is respected: a full session makes the pool open another", async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo(), maxConcurrentStreams: 2 })
  const { pool } = startPool(t)
  const open = opener(pool, web, db.spiffeId.uri, srv.port)
  const streams = await Promise.all(Array.from({ length: 5 }, async () => await open()))
  t.equal(srv.server.stats().sessionsAccepted, 3, '5 streams at 2 per session: 3 sessions')
  t.equal(pool.stats().sessions, 3)
  t.same(await Promise.all(streams.map(async (s, i) => await roundTrip(s, String(i)))), ['0', '1', '2', '3', '4'])
  // A sixth open while 2 sessions are busy again lands where there is room, not in a new session.
  const held = await Promise.all([open(), open(), open(), open()])
  const sixth = await open()
  t.equal(srv.server.stats().sessionsAccepted, 3, 'no new session while one has room')
  await Promise.all([...held, sixth].map(async (s) => await roundTrip(s, 'x')))
})

t.test('a session the server closes when idle (GOAWAY) is dropped and the next open dials again', async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo(), idleTimeoutMs: 200 })
  const { pool } = startPool(t, { idleTimeoutMs: 60_000 })
  const open = opener(pool, web, db.spiffeId.uri, srv.port)
  t.equal(await roundTrip(await open(), 'one'), 'one')
  await waitFor(() => pool.stats().sessions === 0, { timeoutMs: 3000, what: 'the pool to drop the session after GOAWAY' })
  t.equal(await roundTrip(await open(), 'two'), 'two')
  t.equal(srv.server.stats().sessionsAccepted, 2)
})

t.test("a pooled session with no stream for the pool's idle time is closed", async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  const { pool } = startPool(t, { idleTimeoutMs: 200 })
  const s = await opener(pool, web, db.spiffeId.uri, srv.port)()
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(pool.stats().sessions, 1, 'not while a stream is open, however quiet')
  t.equal(await roundTrip(s, 'still here'), 'still here')
  await waitFor(() => pool.stats().sessions === 0 && srv.server.stats().sessions === 0, { timeoutMs: 3000, what: 'idle close' })
})

t.test('server restart: GOAWAY lets the open stream finish while new opens reach the new server', async (t) => {
  const { web, db } = await webAndDb()
  const old = await startServer(t, { svids: [db], onStream: echo() })
  const { pool } = startPool(t)
  const open = opener(pool, web, db.spiffeId.uri, old.port)
  const longLived = await open()
  longLived.write('before ')
  const closing = old.server.close(5000)
  await waitFor(() => pool.stats().draining === 1, { what: 'GOAWAY seen' })
  // A new server takes the port, as a restarted agent would.
  const fresh = await startServer(t, { svids: [db], onStream: echo() })
  t.not(fresh.port, 0)
  const again = await opener(pool, web, db.spiffeId.uri, fresh.port)()
  t.equal(await roundTrip(again, 'new'), 'new')
  t.equal(await roundTrip(longLived, 'and after GOAWAY'), 'before and after GOAWAY', 'the draining session carried its stream to the end')
  await closing
  t.equal(fresh.server.stats().sessionsAccepted, 1)
})

t.test('a dead session is dropped: its streams reset and the next open dials a new one', async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  const { pool } = startPool(t)
  const open = opener(pool, web, db.spiffeId.uri, srv.port)
  const s = await open()
  const ended = drain(s)
  // The server goes away abruptly: its sockets are destroyed, no GOAWAY grace.
  await srv.server.close(0)
  t.match(await ended, { ended: 'error', code: 'ECONNRESET' }, 'the open stream is reset, as a TCP connection would be')
  await waitFor(() => pool.stats().sessions === 0, { what: 'the pool to forget the session' })
  t.match(await open().then(() => null, (e: unknown) => e), { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'connect' }, 'nothing listens there now')
})

t.test('a peer that stops answering is found by PING and its session destroyed', async (t) => {
  const { web, db } = await webAndDb()
  const srv = await startServer(t, { svids: [db], onStream: echo() })
  // A TCP hop between the pool and the server that can freeze, like a peer whose node vanished.
  const hop = await tcpHop(t, srv.port)
  const { pool } = startPool(t, { idleTimeoutMs: 150, pingTimeoutMs: 150 })
  const s = await opener(pool, web, db.spiffeId.uri, hop.port)()
  s.write('hello')
  t.equal((await new Promise<Buffer>((resolve) => s.once('data', resolve))).toString(), 'hello')
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(pool.stats().sessions, 1, 'a quiet stream on a live peer: PINGs are answered, the session stays')
  hop.freeze()
  const started = Date.now()
  t.match(await drain(s, 3000), { ended: 'error', code: 'ECONNRESET' }, 'the stream is reset')
  t.ok(Date.now() - started < 2000, `found within idle + ping timeouts (${Date.now() - started} ms)`)
  await waitFor(() => pool.stats().sessions === 0, { what: 'the pool to forget the session' })
})

t.test('an open whose session is lost before the answer is retried once on a new session', async (t) => {
  const { web, db } = await webAndDb()
  const seen: TunnelRequest[] = []
  // The first CONNECT is left unanswered; later ones are echoed.
  const srv = await startServer(t, { svids: [db], onStream: (req) => { seen.push(req); if (seen.length > 1) echo()(req) } })
  const hop = await tcpHop(t, srv.port)
  const { pool } = startPool(t)
  const opening = opener(pool, web, db.spiffeId.uri, hop.port)()
  await waitFor(() => seen.length === 1, { what: 'the first CONNECT' })
  hop.cut()
  const s = await opening
  t.equal(await roundTrip(s, 'retried'), 'retried')
  t.equal(seen.length, 2, 'the server saw the CONNECT twice')
  t.ok(seen[0].signal.aborted, 'the first one was aborted with its session')
  t.equal(srv.server.stats().sessionsAccepted, 2)
})
