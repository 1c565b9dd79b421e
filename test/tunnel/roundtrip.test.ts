import t from 'tap'
import { constants } from 'node:http2'
import type { Socket } from 'node:net'
import { isTunnelError, type TunnelRequest, type TunnelStream } from '../../src/tunnel'
import { testCa } from '../identity/certs'
import { backend, connectAndRelay, startOutbound, startPool, startServer, type Teardown } from './harness'
import { waitFor } from '../helpers/wait'
import { dial, drain } from '../helpers/net'

// Bytes, half-closes and resets go end to end through the real relay on both sides of a
// real tunnel (TLS 1.3 + HTTP/2 on 127.0.0.1):
//   app ⇄ relay ⇄ TunnelPool ══ mTLS h2 ══ TunnelServer ⇄ relay ⇄ backend

t.setTimeout(20_000)

async function rig (t: Teardown, onBackend: (s: Socket) => void) {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const seen: TunnelRequest[] = []
  const srv = await startServer(t, { svids: [db], onStream: connectAndRelay(seen) })
  const backendPort = await backend(t, onBackend)
  const { pool } = startPool(t)
  const out = await startOutbound(t, pool, { source: () => web, expected: db.spiffeId.uri, tunnelPort: srv.port, authority: `127.0.0.1:${backendPort}` })
  return { ca, web, db, srv, pool, seen, out, backendPort }
}

t.test('bytes flow both ways and both FINs cross the tunnel; the server knows both identities', async (t) => {
  const r = await rig(t, (s) => {
    const got: Buffer[] = []
    s.on('data', (c: Buffer) => got.push(c))
    s.on('end', () => { s.end(`echo:${Buffer.concat(got).toString()}`) })
  })
  const app = await dial(r.out.port)
  app.end('hello through the tunnel')
  const res = await drain(app)
  t.equal(res.data.toString(), 'echo:hello through the tunnel')
  t.equal(res.ended, 'end', 'a FIN, not a reset')
  t.equal(r.seen.length, 1)
  t.match(r.seen[0], {
    peerSpiffeId: r.web.spiffeId.uri,
    peerCertSerial: r.web.serial,
    localSpiffeId: r.db.spiffeId.uri,
    authorityText: `127.0.0.1:${r.backendPort}`,
    authority: { address: '127.0.0.1', port: r.backendPort, family: 4 }
  })
  t.same(r.out.errors, [])
})

t.test("half-close: the app's FIN reaches the backend while the backend keeps answering, and the other way round", async (t) => {
  const order: string[] = []
  const r = await rig(t, (s) => {
    s.on('data', (c: Buffer) => order.push(`backend got ${c.toString()}`))
    s.on('end', () => {
      order.push('backend got FIN')
      // Answers only after the request side is closed: the response must still arrive.
      setTimeout(() => { s.write('late '); setTimeout(() => { s.end('answer') }, 20) }, 50)
    })
  })
  const app = await dial(r.out.port)
  app.end('request')
  const res = await drain(app)
  t.same(order, ['backend got request', 'backend got FIN'])
  t.equal(res.data.toString(), 'late answer')
  t.equal(res.ended, 'end')

  // The backend closes first; the app keeps sending afterwards and it still arrives.
  let backendGot = ''
  let backendEnded = false
  const r2 = await rig(t, (s) => {
    s.end('bye first')
    s.on('data', (c: Buffer) => { backendGot += c.toString() })
    s.on('end', () => { backendEnded = true })
  })
  const app2 = await dial(r2.out.port)
  const got: Buffer[] = []
  app2.on('data', (c: Buffer) => got.push(c))
  await new Promise((resolve) => app2.once('end', resolve))
  t.equal(Buffer.concat(got).toString(), 'bye first', 'the backend FIN reached the app')
  app2.write('still ')
  app2.end('talking')
  await waitFor(() => backendEnded, { what: 'backend FIN' })
  t.equal(backendGot, 'still talking', 'data after the half-close crossed the tunnel')
})

t.test('a reset on either side reaches the other side as a reset', async (t) => {
  const arrived: Array<{ socket: Socket, data: Promise<unknown> }> = []
  const r = await rig(t, (s) => { arrived.push({ socket: s, data: new Promise((resolve) => s.once('data', resolve)) }) })
  const app = await dial(r.out.port)
  app.write('x')
  await waitFor(() => arrived.length === 1, { what: 'backend connection' })
  await arrived[0].data
  const backendEnd = drain(arrived[0].socket)
  app.resetAndDestroy()
  t.match(await backendEnd, { ended: 'error', code: 'ECONNRESET' }, 'app RST → RST_STREAM → backend RST')

  const app2 = await dial(r.out.port)
  app2.write('y')
  await waitFor(() => arrived.length === 2, { what: 'backend connection' })
  await arrived[1].data
  const appEnd = drain(app2)
  arrived[1].socket.resetAndDestroy()
  t.match(await appEnd, { ended: 'error', code: 'ECONNRESET' }, 'backend RST → RST_STREAM → app RST')
})

t.test('the stream maps resets to RST_STREAM CONNECT_ERROR and back to ECONNRESET', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  let serverSide: TunnelStream | null = null
  const srv = await startServer(t, { svids: [db], onStream: (req) => { serverSide = req.accept() } })
  const { pool } = startPool(t)
  const client = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.1.2.3:80' })
  t.equal(client.peerSpiffeId, db.spiffeId.uri)
  t.equal(client.peerCertSerial, db.serial)
  t.equal(client.localSpiffeId, web.spiffeId.uri)
  await waitFor(() => serverSide !== null, { what: 'server stream' })
  const server = serverSide as unknown as TunnelStream
  client.write('abc')
  const first = await new Promise<Buffer>((resolve) => server.once('data', resolve))
  t.equal(first.toString(), 'abc')
  const serverEnd = drain(server)
  client.resetAndDestroy()
  t.match(await serverEnd, { ended: 'error', code: 'ECONNRESET' })
  t.equal(server.rstCode, constants.NGHTTP2_CONNECT_ERROR, 'the server saw CONNECT_ERROR')
  t.equal(client.rstCode, constants.NGHTTP2_CONNECT_ERROR, 'the client sent CONNECT_ERROR')
  t.equal(server.bytesRead, 3)
  t.equal(client.bytesWritten, 3)
})

t.test('refusals come back as FERRY_ERR_TUNNEL_REFUSED with the status, and are reported', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const srv = await startServer(t, {
    svids: [db],
    decisionTimeoutMs: 200,
    onStream: (req) => {
      if (req.authority.port === 403) req.refuse(403, 'policy says no')
      else if (req.authority.port === 500) throw new Error('boom')
      else if (req.authority.port === 504) { /* never decides */ } else connectAndRelay()(req)
    }
  })
  const { pool } = startPool(t)
  const open = (authority: string): Promise<TunnelStream> => pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId.uri, node: { address: '127.0.0.1', port: srv.port }, authority })
  for (const [port, reason] of [[403, 'refused'], [500, 'handler-error'], [504, 'decision-timeout']] as const) {
    const err = await open(`10.0.0.1:${port}`).then(() => null, (e: unknown) => e)
    t.ok(isTunnelError(err), `${port}: a TunnelError`)
    t.match(err, { code: 'FERRY_ERR_TUNNEL_REFUSED', reason: 'status', status: port })
    t.match(srv.refusals.find((x) => x.status === port), { side: 'server', stage: 'stream', reason, peerSpiffeId: web.spiffeId.uri, localSpiffeId: db.spiffeId.uri, authority: `10.0.0.1:${port}` })
  }
  // Nothing listens on port 1 of 127.0.0.1: the agent's connect fails and it answers 503.
  t.match(await open('127.0.0.1:1').then(() => null, (e: unknown) => e), { code: 'FERRY_ERR_TUNNEL_REFUSED', status: 503 })
  t.equal(srv.server.stats().sessionsAccepted, 1, 'refusals did not cost the session')
  t.rejects(open('example.com:80'), { code: 'FERRY_ERR_INVALID_ARG' }, 'the pool only sends ip:port')
})

t.test('an IPv6 destination travels bracketed, and forwarded carries the source address', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const seen: TunnelRequest[] = []
  const srv = await startServer(t, { svids: [db], onStream: (req) => { seen.push(req); const s = req.accept(); s?.end('ok') } })
  const { pool } = startPool(t)
  const stream = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId.uri, node: { address: '127.0.0.1', port: srv.port }, authority: { address: 'FD00::5', port: 8080 }, sourceAddress: 'fd00::9' })
  stream.end()
  t.equal((await drain(stream)).data.toString(), 'ok')
  t.match(seen[0], { authorityText: '[fd00::5]:8080', authority: { address: 'fd00::5', port: 8080, family: 6 }, forwardedFor: 'fd00::9' })
})

t.test('a client that gives up before the answer aborts the request: accept() then returns null', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  let aborted = false
  let late: TunnelStream | null | undefined
  const srv = await startServer(t, {
    svids: [db],
    onStream: (req) => {
      req.signal.addEventListener('abort', () => { aborted = true; late = req.accept() })
    }
  })
  const { pool } = startPool(t, { openTimeoutMs: 200 })
  const err = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId.uri, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.1:80' }).then(() => null, (e: unknown) => e)
  t.match(err, { code: 'FERRY_ERR_TUNNEL_CONNECT', reason: 'timeout' })
  await waitFor(() => aborted, { what: 'abort seen by the server' })
  t.equal(late, null, 'accept() after the client left returns null')
})
