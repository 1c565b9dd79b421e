import t from 'tap'
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { connect, createServer, type Socket } from 'node:net'
import type { Svid } from '../../src/identity/svid'
import { relay } from '../../src/proxy/relay'
import type { TunnelRequest, TunnelStream } from '../../src/tunnel'
import { NodeBufferBudget } from '../../src/tunnel/buffer-budget'
import { TUNNEL_DEFAULTS } from '../../src/tunnel/defaults'
import { testCa } from '../identity/certs'
import { asSocket, echoOrSink, listen, rawSession, roundTrip, sleep, startPool, startServer } from './harness'
import { waitFor } from '../helpers/wait'

// A verified peer cannot make a node buffer without bound. Here hostile clients (valid
// SVIDs, raw HTTP/2) open 100 CONNECT streams each and write into every one while the
// destination never reads — the worst a peer can do to a node's memory through the
// tunnel. What the server then holds (bytes received and not yet consumed, in its
// HTTP/2 and TunnelStream buffers) stays within what it reserved — the streams' windows,
// which shrink as streams multiply, within the session's budget, and the buffers each
// backed-up stream leases — and within the node's budget; a stream that does not fit is
// refused (REFUSED_STREAM). Meanwhile other sessions work. Then, one stream at a time on
// real sockets, the leases' sizes are checked against what a backed-up stream holds.
//
// Without the budget (src/tunnel/buffer-budget.ts) one such session alone holds 100 ×
// the 4 MiB stream window: 400 MiB.

t.setTimeout(60_000)

const KiB = 1024
const MiB = 1024 * KiB
const SESSION = 16 * MiB
const NODE = 40 * MiB
const STREAMS = 100
const PER_STREAM = TUNNEL_DEFAULTS.streamWindowBytes + MiB
const CHUNK = Buffer.alloc(64 * 1024, 0x61)
const RETRIES = 3

interface Flood { refused: number, opened: number, streams: ClientHttp2Stream[] }

/**
 * Opens STREAMS CONNECTs on `session` and, once each is answered, writes PER_STREAM bytes
 * into it as fast as the server lets it, without reading anything; a stream refused
 * (REFUSED_STREAM) is opened again, up to RETRIES times, as a persistent peer would.
 */
function floodStreams (session: ClientHttp2Session): Flood {
  const f: Flood = { refused: 0, opened: 0, streams: [] }
  const one = (retries: number): void => {
    if (session.closed || session.destroyed) return
    const s = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.7:80' }, { endStream: false })
    s.on('error', () => {})
    let sent = 0
    const write = (): void => {
      while (sent < PER_STREAM && !s.destroyed) {
        sent += CHUNK.length
        if (!s.write(CHUNK)) { s.once('drain', write); return }
      }
    }
    s.once('response', () => { f.opened++; write() })
    s.once('close', () => {
      if (s.rstCode !== constants.NGHTTP2_REFUSED_STREAM) return
      f.refused++
      if (retries > 0) setTimeout(() => { one(retries - 1) }, 50)
    })
    f.streams.push(s)
  }
  for (let i = 0; i < STREAMS; i++) one(RETRIES)
  return f
}

/** Polls `read` until it stops growing for a while; returns the highest value seen. */
async function settle (read: () => number): Promise<number> {
  let peak = read()
  let last = -1
  let still = 0
  for (let i = 0; i < 200 && still < 4; i++) {
    await sleep(150)
    const v = read()
    peak = Math.max(peak, v)
    still = v === last ? still + 1 : 0
    last = v
  }
  return peak
}

async function rig (t: Parameters<typeof startServer>[0]) {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const evil = await Promise.all([0, 1, 2].map(async () => await ca.svid('app/evil')))
  const budget = NodeBufferBudget.create({ nodeBytes: NODE, sessionBytes: SESSION })
  const sink: TunnelStream[] = []
  // The other peers' streams go to a destination that never reads; app/web's echoes.
  const onStream = echoOrSink(web.spiffeId.uri, sink)
  const srv = await startServer(t, { svids: [db], onStream, bufferBudget: budget })
  t.teardown(() => { for (const s of sink) s.destroy() })
  const { pool } = startPool(t)
  const openGood = async (): Promise<TunnelStream> => await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  const hostile = async (svid: Svid): Promise<Flood> => floodStreams(await rawSession(t, srv.port, svid, db.spiffeId.uri))
  return { srv, budget, openGood, hostile, evil }
}

t.test('one verified peer: 100 streams written and never read hold no more than their windows (within the session budget) and their leases; other sessions keep working', async (t) => {
  const r = await rig(t)
  const before = await r.openGood()
  t.equal(await roundTrip(before, 'ping'), 'ping')
  const early = await r.openGood()
  early.write('opened before, ')
  const flood = await r.hostile(r.evil[0])
  const held = await settle(() => r.srv.server.stats().bufferHeldBytes)
  const stats = r.srv.server.stats()
  t.comment(`hostile session: ${flood.opened} streams answered, ${flood.refused} refused; the server held at most ${(held / MiB).toFixed(1)} MiB, reserved ${(stats.bufferReservedBytes / MiB).toFixed(1)} MiB`)
  const leases = STREAMS * TUNNEL_DEFAULTS.receiveStallBytes
  t.ok(held <= stats.bufferReservedBytes, `held ${(held / MiB).toFixed(1)} MiB ≤ reserved ${(stats.bufferReservedBytes / MiB).toFixed(1)} MiB (without the budget: ${STREAMS} × ${TUNNEL_DEFAULTS.streamWindowBytes / MiB} MiB)`)
  t.ok(held >= MiB, 'the peer did fill what it was given (the measurement sees the buffers)')
  t.ok(stats.bufferReservedBytes <= SESSION + leases + 2 * MiB, `reserved ${(stats.bufferReservedBytes / MiB).toFixed(1)} MiB: the hostile session's windows ≤ its ${SESSION / MiB} MiB budget, its streams' leases (${(leases / MiB).toFixed(1)} MiB at most), plus app/web's`)
  t.ok(flood.opened >= 10, `the peer got streams (${flood.opened}): smaller windows made room for more`)
  t.equal(await roundTrip(early, 'finished during the flood'), 'opened before, finished during the flood', 'a stream opened before keeps flowing')
  t.equal(await roundTrip(await r.openGood(), 'new'), 'new', 'and new streams of another session open and flow')
  for (const s of flood.streams) s.close(constants.NGHTTP2_CANCEL)
  await waitFor(() => r.srv.server.stats().streams <= 1, { timeoutMs: 10_000, what: 'the hostile streams to be gone' })
  await waitFor(() => r.budget.reservedBytes() <= 2 * MiB, { timeoutMs: 10_000, what: 'their reservations to be returned' })
  t.pass('reservations are returned when the streams close')
})

t.test('three verified peers: together they hold at most the node budget', async (t) => {
  const r = await rig(t)
  const early = await r.openGood()
  early.write('opened before, ')
  const floods = await Promise.all(r.evil.map(async (svid) => await r.hostile(svid)))
  const held = await settle(() => r.srv.server.stats().bufferHeldBytes)
  const reserved = r.budget.reservedBytes()
  t.comment(`three hostile sessions: ${floods.map((f) => `${f.opened} answered/${f.refused} refused`).join(', ')}; held at most ${(held / MiB).toFixed(1)} MiB, reserved ${(reserved / MiB).toFixed(1)} MiB`)
  t.ok(held <= NODE, `held ${(held / MiB).toFixed(1)} MiB ≤ the ${NODE / MiB} MiB node budget (each session alone may reserve ${SESSION / MiB} MiB)`)
  t.ok(reserved <= NODE, 'reservations never exceed it')
  t.ok(held <= reserved, 'and what is held is within what is reserved')
  t.ok(floods.every((f) => f.opened > 0), 'each peer got streams')
  t.equal(await roundTrip(early, 'still flowing'), 'opened before, still flowing', 'a stream opened before the flood keeps flowing')
})

t.test('a stream starts at the 4 KiB floor, grows to the full 4 MiB window while it moves bulk data (bulk throughput is not traded away), and shrinks back once idle', async (t) => {
  const r = await rig(t)
  const s = await r.openGood()
  const floor = TUNNEL_DEFAULTS.minStreamWindowBytes
  const full = TUNNEL_DEFAULTS.streamWindowBytes
  await waitFor(() => s.receiveWindows().stream === floor, { what: 'the 4 KiB floor' })
  t.pass('an idle stream is granted the floor')
  // Bulk through the echo: the client end receives as fast as the window lets it.
  let received = 0
  s.on('data', (c: Buffer) => { received += c.length })
  const chunk = Buffer.alloc(256 * KiB, 0x62)
  let sent = 0
  let grown = false
  const deadline = Date.now() + 20_000
  while (!grown && Date.now() < deadline) {
    if (!s.write(chunk)) await new Promise((resolve) => s.once('drain', resolve))
    sent += chunk.length
    grown = s.receiveWindows().stream > full / 2
  }
  await waitFor(() => received === sent, { what: 'every echoed byte back', timeoutMs: 20_000 })
  t.ok(grown, `the window grew past 2 MiB while ${(sent / MiB).toFixed(0)} MiB moved (the full ${full / MiB} MiB: a window a quarter of it would have been 1 MiB)`)
  t.ok(r.budget.openBytes() >= full, `and its reservation grew with it (${(r.budget.openBytes() / MiB).toFixed(1)} MiB reserved)`)
  // Idle: back to the floor, a fourfold step a second, and the reservation with it.
  await waitFor(() => s.receiveWindows().stream === floor && r.budget.openBytes() < 64 * KiB, { what: 'the floor again', timeoutMs: 15_000, intervalMs: 100 })
  t.pass('idle again: the floor, and its reservation back to 20 KiB')
  t.equal(await roundTrip(s, 'x'), 'x')
})

/** A window small enough that the kernel's and the stream's buffers, not the window, show. */
const SMALL_WINDOW = 64 * KiB

/** Writes `total` bytes into `to` with backpressure; resolves with what it could write before progress stopped. */
async function writeUntilStuck (to: NodeJS.WritableStream & { writableNeedDrain: boolean }, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * KiB, 0x73)
  let written = 0
  while (written < total) {
    const more = to.write(chunk)
    written += chunk.length
    if (!more) {
      const drained = await Promise.race([new Promise((resolve) => to.once('drain', () => { resolve(true) })), sleep(1000).then(() => false)])
      if (drained === false) break
    }
  }
  return written
}

t.test('a stream whose pod does not read holds at most its window and receiveStallBytes, leased while backed up', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const budget = NodeBufferBudget.create({ maxWindowBytes: SMALL_WINDOW })
  // The pod: accepts and does not read until told to.
  let pod: Socket | null = null
  const { port: podPort } = await listen(t, (s) => { pod = s })
  t.teardown(() => { pod?.destroy() })
  let upstream: Socket | null = null
  let stream: TunnelStream | null = null
  const onStream = (req: TunnelRequest): void => {
    const u = connect({ host: '127.0.0.1', port: podPort, allowHalfOpen: true })
    u.once('connect', () => {
      const s = req.accept()
      if (s === null) { u.destroy(); return }
      upstream = u
      stream = s
      t.teardown(() => { u.destroy() })
      relay(asSocket(s), u, () => {})
    })
  }
  const srv = await startServer(t, { svids: [db], onStream, bufferBudget: budget })
  const { pool } = startPool(t)
  const client = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  client.on('error', () => {})
  t.teardown(() => { client.destroy() })
  const sent = await writeUntilStuck(client, 64 * MiB)
  await waitFor(() => budget.stalledBytes() > 0, { what: 'the receive side to lease its buffers' })
  const u = upstream as unknown as Socket
  const held = budget.heldBytes() + u.writableLength
  const bound = SMALL_WINDOW + TUNNEL_DEFAULTS.receiveStallBytes
  t.comment(`${(sent / MiB).toFixed(1)} MiB sent before the writer stalled (the kernel holds most); the server holds ${(held / KiB).toFixed(0)} KiB: HTTP/2 and TunnelStream ${(budget.heldBytes() / KiB).toFixed(0)} KiB, the socket to the pod ${(u.writableLength / KiB).toFixed(0)} KiB`)
  t.ok(held > SMALL_WINDOW, 'the stream did back up past its window')
  t.ok(held <= bound, `held ${(held / KiB).toFixed(0)} KiB ≤ window + receiveStallBytes = ${(bound / KiB).toFixed(0)} KiB`)
  t.equal(budget.stalledBytes(), TUNNEL_DEFAULTS.receiveStallBytes, 'its receive side holds a lease of receiveStallBytes')
  t.ok((stream as unknown as TunnelStream).readableLength <= 16 * KiB, 'the TunnelStream itself holds one piece at most')
  // The pod reads again: everything arrives, and the lease is returned.
  let got = 0
  const p = pod as unknown as Socket
  p.on('data', (c: Buffer) => { got += c.length })
  p.resume()
  await waitFor(() => got >= sent && budget.stalledBytes() === 0, { timeoutMs: 20_000, what: `all ${sent} bytes at the pod and the lease returned` })
  t.equal(got, sent, 'every byte reached the pod')
})

t.test('a stream whose peer does not read holds at most sendStallBytes on the sending node, leased while backed up', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  // The peer accepts and never reads its end.
  const unread: TunnelStream[] = []
  const srv = await startServer(t, { svids: [db], onStream: (req) => { const s = req.accept(); if (s !== null) { s.on('error', () => {}); unread.push(s) } } })
  t.teardown(() => { for (const s of unread) s.destroy() })
  const budget = NodeBufferBudget.create({ maxWindowBytes: SMALL_WINDOW })
  const { pool } = startPool(t, { bufferBudget: budget })
  // The outbound side: the app's connection relayed into a tunnel stream.
  let appSide: Socket | null = null
  const outbound = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    s.on('error', () => {})
    pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
      .then((stream) => { appSide = s; relay(s, asSocket(stream), () => {}) }, () => { s.destroy() })
  })
  await new Promise<void>((resolve) => outbound.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { outbound.close() })
  const app = connect({ host: '127.0.0.1', port: (outbound.address() as { port: number }).port })
  app.on('error', () => {})
  t.teardown(() => { app.destroy() })
  await new Promise((resolve) => app.once('connect', resolve))
  const sent = await writeUntilStuck(app, 64 * MiB)
  await waitFor(() => appSide !== null && budget.stalledBytes() > 0, { what: 'the send side to lease its buffers' })
  const a = appSide as unknown as Socket
  const held = budget.heldBytes() + a.readableLength
  t.comment(`${(sent / MiB).toFixed(1)} MiB written by the app before it stalled (the kernel holds most); the sending node holds ${(held / KiB).toFixed(0)} KiB: HTTP/2 and TunnelStream ${(budget.heldBytes() / KiB).toFixed(0)} KiB, the app's socket ${(a.readableLength / KiB).toFixed(0)} KiB`)
  t.ok(held > 0, 'the stream did back up')
  t.ok(held <= TUNNEL_DEFAULTS.sendStallBytes, `held ${(held / KiB).toFixed(0)} KiB ≤ sendStallBytes = ${TUNNEL_DEFAULTS.sendStallBytes / KiB} KiB`)
  t.equal(budget.stalledBytes(), TUNNEL_DEFAULTS.sendStallBytes, 'its send side holds a lease of sendStallBytes')
})
