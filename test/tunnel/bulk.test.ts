import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import type { Writable } from 'node:stream'
import { testCa } from '../identity/certs'
import type { TunnelRequest } from '../../src/tunnel'
import { backend, startOutbound, startPool, startServer, tcpHop } from './harness'
import { dial, drain } from '../helpers/net'

// Bulk transfer through the whole path, relay on both sides, with a SHA-256 check:
//   app ⇄ relay ⇄ TunnelPool ══ mTLS h2 ══ TunnelServer ⇄ relay ⇄ backend
// 64 MiB each way, bounded in time. The MB/s printed is a diagnostic, never asserted.

t.setTimeout(20_000)

const MiB = 1024 * 1024
const TOTAL_MIB = 64
const BLOCK = randomBytes(MiB)
const EXPECTED = (() => {
  const h = createHash('sha256')
  for (let i = 0; i < TOTAL_MIB; i++) h.update(BLOCK)
  return h.digest('hex')
})()

/** Writes TOTAL_MIB blocks with backpressure, then ends. */
async function pump (to: Writable): Promise<void> {
  for (let i = 0; i < TOTAL_MIB; i++) {
    if (!to.write(BLOCK)) await new Promise((resolve) => to.once('drain', resolve))
  }
  to.end()
}

function mbps (bytes: number, ms: number): string {
  return (bytes / MiB / (ms / 1000)).toFixed(0)
}

async function rig (t: Parameters<typeof startPool>[0], onBackend: (s: Socket) => void) {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const srv = await startServer(t, { svids: [db] })
  const port = await backend(t, onBackend)
  const { pool } = startPool(t)
  const out = await startOutbound(t, pool, { source: () => web, expected: db.spiffeId.uri, tunnelPort: srv.port, authority: `127.0.0.1:${port}` })
  return { out }
}

t.test(`${TOTAL_MIB} MiB app → backend arrives intact`, async (t) => {
  const r = await rig(t, (s) => {
    const h = createHash('sha256')
    let n = 0
    s.on('data', (c: Buffer) => { h.update(c); n += c.length })
    s.on('end', () => { s.end(`${n} ${h.digest('hex')}`) })
  })
  const app = await dial(r.out.port)
  let answer = ''
  app.on('data', (d: Buffer) => { answer += d.toString() })
  const ended = new Promise((resolve) => app.once('end', resolve))
  const started = performance.now()
  await pump(app)
  await ended
  const ms = performance.now() - started
  t.equal(answer, `${TOTAL_MIB * MiB} ${EXPECTED}`, 'byte count and SHA-256 match')
  t.comment(`upload: ${TOTAL_MIB} MiB in ${ms.toFixed(0)} ms = ${mbps(TOTAL_MIB * MiB, ms)} MB/s`)
})

t.test(`${TOTAL_MIB} MiB backend → app arrives intact`, async (t) => {
  const r = await rig(t, (s) => { void pump(s) })
  const app = await dial(r.out.port)
  const h = createHash('sha256')
  let n = 0
  const started = performance.now()
  app.on('data', (c: Buffer) => { h.update(c); n += c.length })
  await new Promise((resolve) => app.once('end', resolve))
  const ms = performance.now() - started
  app.end()
  t.equal(n, TOTAL_MIB * MiB)
  t.equal(h.digest('hex'), EXPECTED, 'SHA-256 matches')
  t.comment(`download: ${TOTAL_MIB} MiB in ${ms.toFixed(0)} ms = ${mbps(TOTAL_MIB * MiB, ms)} MB/s`)
})

t.test('flow control: with 10 ms of RTT, the tuned windows keep the pipe full (diagnostic)', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const sink = (req: TunnelRequest): void => {
    const s = req.accept()
    if (s === null) return
    const h = createHash('sha256')
    s.on('data', (c: Buffer) => h.update(c))
    s.on('end', () => { s.end(h.digest('hex')) })
  }
  // The protocol's default windows (64 KiB) against the tunnel's (4 MiB per stream, 16 MiB per session).
  for (const [label, mib, windows] of [['tuned windows', 16, {}], ['HTTP/2 default windows', 1, { streamWindowBytes: 65_535, connectionWindowBytes: 65_535 }]] as const) {
    const srv = await startServer(t, { svids: [db], onStream: sink, ...windows })
    const hop = await tcpHop(t, srv.port, { delayMs: 5 })
    const { pool } = startPool(t, windows)
    const s = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: hop.port }, authority: '10.0.0.7:80' })
    const expected = createHash('sha256')
    const started = performance.now()
    const answer = drain(s, 10_000)
    for (let i = 0; i < mib; i++) {
      expected.update(BLOCK)
      if (!s.write(BLOCK)) await new Promise((resolve) => s.once('drain', resolve))
    }
    s.end()
    t.equal((await answer).data.toString(), expected.digest('hex'), `${label}: intact`)
    const ms = performance.now() - started
    t.comment(`${label}, RTT 10 ms: ${mib} MiB in ${ms.toFixed(0)} ms = ${mbps(mib * MiB, ms)} MB/s`)
  }
})
