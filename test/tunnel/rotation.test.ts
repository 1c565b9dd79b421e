import t from 'tap'
import pino from 'pino'
import { CertificateManager } from '../../src/identity/certificate-manager'
import type { Svid } from '../../src/identity/svid'
import { SniIndex, sniOf, type TunnelRequest, type TunnelStream } from '../../src/tunnel'
import { startCa } from '../controller/harness'
import { testCa } from '../identity/certs'
import { echo, roundTrip, startPool, startServer } from './harness'
import { waitFor } from '../helpers/wait'

// Rotation: new sessions use the current SVID on both ends, sessions made with an old
// one drain (their streams finish, no new ones), and nothing fails across rotations.

t.setTimeout(20_000)

t.test('mid-session rotation: new opens get a new session with the new certificates, the old stream finishes', async (t) => {
  const ca = await testCa()
  const web1 = await ca.svid('app/web')
  const db1 = await ca.svid('data/db')
  let client = web1
  let server = db1
  const seen: TunnelRequest[] = []
  const srv = await startServer(t, { selectSvid: (sni) => sni === sniOf(db1.spiffeId) ? server : null, onStream: echo(seen) })
  const { pool } = startPool(t)
  const open = async (): Promise<TunnelStream> => await pool.open({ sourceSvid: () => client, expectedPeer: db1.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })

  const before = await open()
  before.write('started before, ')
  t.equal(seen[0].peerCertSerial, web1.serial, 'the server saw the first client certificate')
  t.equal(before.peerCertSerial, db1.serial, 'the client saw the first server certificate')

  client = await ca.svid('app/web')
  server = await ca.svid('data/db')
  const after = await open()
  t.equal(srv.server.stats().sessionsAccepted, 2, 'a new session for the new client certificate')
  t.equal(seen[1].peerCertSerial, client.serial, 'presenting the new client certificate')
  t.equal(after.peerCertSerial, server.serial, 'and met by the new server certificate')
  t.equal(pool.stats().draining, 1, 'the old session drains')

  t.equal(await roundTrip(before, 'finished after'), 'started before, finished after', 'the stream on the old session carries on to its end')
  await waitFor(() => pool.stats().sessions === 1 && srv.server.stats().sessions === 1, { what: 'the drained session to close' })
  t.equal(await roundTrip(after, 'x'), 'x')
  t.equal(await roundTrip(await open(), 'y'), 'y')
  t.equal(srv.server.stats().sessionsAccepted, 2, 'later opens share the new session')
})

t.test('with the real certificate manager and 2 s certificates: several rotations, zero failures', async (t) => {
  const WEB = 'spiffe://cluster.local/ns/app/sa/web'
  const DB = 'spiffe://cluster.local/ns/data/sa/db'
  const ca = await startCa(t)
  const silent = pino({ level: 'silent' })
  // web runs on n1 and db on n2 (the harness's pods): each node's agent holds its own.
  const n1 = new CertificateManager({ signer: ca.client('n1'), log: silent, ttlMs: 2000 })
  const n2 = new CertificateManager({ signer: ca.client('n2'), log: silent, ttlMs: 2000 })
  t.teardown(() => { n1.close(); n2.close() })
  n1.add(WEB)
  n2.add(DB)
  await Promise.all([n1.whenReady(WEB), n2.whenReady(DB)])
  const names = new SniIndex()
  names.add(DB)
  const seen: TunnelRequest[] = []
  const srv = await startServer(t, {
    selectSvid: (sni) => { const id = names.identityOf(sni); return id === null ? null : n2.current(id) },
    onStream: echo(seen)
  })
  const { pool } = startPool(t)
  const source = (): Svid => n1.current(WEB) as Svid
  const open = async (): Promise<TunnelStream> => await pool.open({ sourceSvid: source, expectedPeer: DB, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })

  const longLived = await open()
  let sent = ''
  const clientSerials = new Set<string>()
  const serverSerials = new Set<string>()
  let ok = 0
  const failures: string[] = []
  const until = Date.now() + 4500
  for (let i = 0; i < 400 && Date.now() < until; i++) {
    try {
      const s = await open()
      serverSerials.add(s.peerCertSerial)
      if (await roundTrip(s, `request ${i}`) === `request ${i}`) ok++
      else failures.push(`request ${i}: wrong answer`)
    } catch (err) {
      failures.push(`request ${i}: ${(err as Error).message}`)
    }
    if (i % 10 === 0) { longLived.write(`${i},`); sent += `${i},` }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  for (const r of seen) clientSerials.add(r.peerCertSerial)
  t.same(failures, [], 'zero failed requests')
  t.ok(ok > 50, `${ok} requests`)
  t.ok(clientSerials.size >= 3, `the server saw ${clientSerials.size} client certificates`)
  t.ok(serverSerials.size >= 3, `the client saw ${serverSerials.size} server certificates`)
  t.equal(await roundTrip(longLived, 'end'), `${sent}end`, 'a stream opened before the first rotation is intact')
  await waitFor(() => pool.stats().sessions <= 2, { what: 'old sessions drained' })
})
