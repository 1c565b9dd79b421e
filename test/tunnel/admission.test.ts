import t from 'tap'
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { sourceHash, TunnelAdmission } from '../../src/tunnel/admission'
import { REPO } from '../helpers/cli'
import { testCa } from '../identity/certs'
import { echo, roundTrip, startPool, startServer } from './harness'
import { waitFor } from '../helpers/wait'

// Who may start a TLS handshake on the tunnel port, decided at accept (before any TLS
// work) for the whole node: the bound on unverified connections and each source's
// handshake rate (src/tunnel/admission.ts, accept-gate.ts). Several tunnel servers — one
// per data-path worker — share one admission state, in shared memory, across threads.

t.setTimeout(30_000)

/** A TCP connection from `from` (a loopback address) that never sends; resolves once connected. */
async function silent (port: number, from = '127.0.0.1'): Promise<Socket> {
  const s = netConnect({ host: '127.0.0.1', port, localAddress: from })
  s.on('error', () => {})
  await new Promise<void>((resolve) => s.once('connect', () => resolve()))
  return s
}

const closed = async (s: Socket): Promise<void> => { if (!s.destroyed) await new Promise((resolve) => s.once('close', resolve)) }

t.test('a source over its handshake rate is reset at accept; other sources, and the mesh, are not', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const admission = TunnelAdmission.create({ perSourcePerSecond: 1, perSourceBurst: 5 })
  const srv = await startServer(t, { svids: [db], onStream: echo(), admission, firstByteTimeoutMs: 5000 })
  const flood = await Promise.all(Array.from({ length: 12 }, async () => await silent(srv.port, '127.0.0.2')))
  t.teardown(() => { for (const s of flood) s.destroy() })
  await waitFor(() => srv.refusals.length >= 7, { what: 'the refusals' })
  t.same(srv.refusals.map((r) => r.reason), Array(7).fill('rate-limit'), 'beyond the burst of 5, each connection is refused for its rate')
  t.match(srv.refusals[0], { side: 'server', stage: 'accept', remote: /^127\.0\.0\.2:\d+$/, servername: null, detail: /over 1 handshakes per second \(burst 5\)/ })
  t.equal(admission.pending(), 5, 'the five admitted hold a pending slot each')
  // The mesh's own source (another address) is not held back by the flooding one.
  const { pool } = startPool(t)
  const s = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  t.equal(await roundTrip(s, 'through'), 'through', 'a session from another source is made and works')
  t.equal(admission.pending(), 5, 'and, verified, it holds no pending slot')
})

t.test('the pending bound holds across two servers sharing one admission state (as two workers would); slots come back', async (t) => {
  const admission = TunnelAdmission.create({ pendingMax: 8, perSourceBurst: 1000 })
  const db = await (await testCa()).svid('data/db')
  const a = await startServer(t, { svids: [db], onStream: echo(), admission: TunnelAdmission.attach(admission.buffer), firstByteTimeoutMs: 400 })
  const b = await startServer(t, { svids: [db], onStream: echo(), admission: TunnelAdmission.attach(admission.buffer), firstByteTimeoutMs: 400 })
  const held = [...await Promise.all([0, 1, 2, 3, 4].map(async () => await silent(a.port))), ...await Promise.all([0, 1, 2, 3, 4].map(async () => await silent(b.port)))]
  t.teardown(() => { for (const s of held) s.destroy() })
  await waitFor(() => a.refusals.length + b.refusals.length >= 2, { what: 'two refusals' })
  t.same([...a.refusals, ...b.refusals].map((r) => r.reason), ['pending-limit', 'pending-limit'], '10 silent connections over two listeners, 8 admitted node-wide')
  t.equal(admission.pending(), 8)
  await Promise.all(held.map(closed))
  await waitFor(() => admission.pending() === 0, { what: 'the slots to come back' })
  t.pass('every slot is given back when the first-byte timeout cuts the silent ones')
  t.same([...a.refusals, ...b.refusals].filter((r) => r.reason === 'first-byte-timeout').length, 8)
  const again = await silent(b.port)
  t.equal(admission.pending(), 1, 'and a new connection is admitted')
  again.destroy()
})

t.test('the state is shared across threads: a worker and the main thread admitting at once admit exactly the bound', async (t) => {
  const BOUND = 150_000
  const admission = TunnelAdmission.create({ pendingMax: BOUND, perSourceBurst: 1 << 16 })
  // Both threads start on one signal (a shared flag), then admit as fast as they can.
  const go = new Int32Array(new SharedArrayBuffer(4))
  const src = `
    const { workerData, parentPort } = require('node:worker_threads')
    const { TunnelAdmission } = require(workerData.module)
    const a = TunnelAdmission.attach(workerData.buffer)
    parentPort.postMessage('ready')
    Atomics.wait(workerData.go, 0, 0)
    let ok = 0
    for (let i = 0; i < 100000; i++) if (a.admit('10.0.' + (i % 250) + '.' + (i >> 8 & 255), Date.now()) === null) ok++
    parentPort.postMessage(ok)`
  const worker = new Worker(src, { eval: true, workerData: { buffer: admission.buffer, go, module: join(REPO, 'dist/src/tunnel/admission.js') } })
  const messages: Array<string | number> = []
  const next = async (): Promise<string | number> => await new Promise((resolve, reject) => {
    if (messages.length > 0) { resolve(messages.shift() as string | number); return }
    worker.once('message', (m: string | number) => { resolve(m) })
    worker.once('error', reject)
  })
  t.equal(await next(), 'ready')
  Atomics.store(go, 0, 1)
  Atomics.notify(go, 0)
  let ok = 0
  for (let i = 0; i < 100000; i++) if (admission.admit(`10.1.${i % 250}.${i >> 8 & 255}`, Date.now()) === null) ok++
  const fromWorker = await next() as number
  await worker.terminate()
  t.comment(`main thread ${ok}, worker ${fromWorker}`)
  t.equal(ok + fromWorker, BOUND, 'exactly the bound admitted between the two threads')
  t.equal(admission.pending(), BOUND)
})

t.test('sources are keyed by IPv4 address (also IPv4-mapped) and by IPv6 /64', async (t) => {
  const seed = 12345
  t.equal(sourceHash('::ffff:172.30.0.254', seed), sourceHash('172.30.0.254', seed), 'an IPv4 peer on a dual-stack listener is its IPv4 address')
  t.equal(sourceHash('fd00:1:2:3::5', seed), sourceHash('fd00:1:2:3:ffff::9', seed), 'one /64, one bucket')
  t.equal(sourceHash('fd00::5', seed), sourceHash('fd00:0:0:0:1::', seed), 'compressed forms agree')
  t.not(sourceHash('fd00:1:2:4::5', seed), sourceHash('fd00:1:2:3::5', seed), 'another /64, another bucket')
  t.not(sourceHash('172.30.0.1', seed), sourceHash('172.30.0.1', seed + 1), 'the key changes with the node\'s random seed')
  t.throws(() => TunnelAdmission.create({ tableSize: 1000 }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => TunnelAdmission.attach(new SharedArrayBuffer(64)), { code: 'FERRY_ERR_INVALID_ARG' })
})
