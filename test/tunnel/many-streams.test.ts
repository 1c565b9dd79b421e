import t from 'tap'
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { bufferBudgetFor } from '../../src/agent/memory-limit'
import type { TunnelRequest, TunnelStream } from '../../src/tunnel'
import { NodeBufferBudget } from '../../src/tunnel/buffer-budget'
import { TUNNEL_DEFAULTS } from '../../src/tunnel/defaults'
import { testCa } from '../identity/certs'
import { waitFor } from '../helpers/wait'
import { echoOrSink, rawSession, startPool, startServer } from './harness'

// Many tunnel streams per node, as the buffer budget's arithmetic promises them: the
// DaemonSet's 512 Mi memory limit gives a 256 MiB budget, which must hold 10,000 mostly
// idle streams. Here 3,000 streams run through one pool to one server on loopback, with
// each end's budget scaled by the same factor (76.8 MiB): the windows, reservations and
// refusals are those of 10,000 streams at 256 MiB.
//
// Guards the budget's per-stream cost: when each stream reserved its window plus 128 KiB
// of stream buffers (192 KiB at the 64 KiB floor), this budget held 409 streams and the
// 410th open failed with FERRY_ERR_TUNNEL_BUSY; without stall leases, hostile writers
// into 3,000 unread streams would make the server hold more than its budget.

t.setTimeout(240_000)

const KiB = 1024
const MiB = 1024 * KiB
const STREAMS = 3000
const NODE = Math.floor(bufferBudgetFor(512 * MiB) * STREAMS / 10_000)
const BATCH = 100
/** A message larger than the floor window: it needs window updates on the way. */
const MESSAGE = 10 * KiB

/** Writes `data` on `s` and resolves once as many bytes came back (the other end echoes). */
async function echoed (s: TunnelStream, data: Buffer): Promise<boolean> {
  return await new Promise((resolve) => {
    let n = 0
    const onData = (c: Buffer): void => {
      n += c.length
      if (n < data.length) return
      s.off('data', onData)
      resolve(n === data.length)
    }
    s.on('data', onData)
    s.once('close', () => { resolve(false) })
    s.write(data)
  })
}

t.test(`${STREAMS} streams through one pool to one server (each budget ${(NODE / MiB).toFixed(1)} MiB: 10,000 at 256 MiB): every stream opens and carries bytes`, async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const serverBudget = NodeBufferBudget.create({ nodeBytes: NODE })
  const poolBudget = NodeBufferBudget.create({ nodeBytes: NODE })
  const serverStreams: TunnelStream[] = []
  const onStream = (req: TunnelRequest): void => {
    const s = req.accept()
    if (s === null) return
    s.on('error', () => {})
    s.pipe(s)
    serverStreams.push(s)
  }
  const srv = await startServer(t, { svids: [db], onStream, bufferBudget: serverBudget })
  const { pool, refusals } = startPool(t, { bufferBudget: poolBudget })
  const streams: TunnelStream[] = []
  t.teardown(() => { for (const s of streams) s.destroy() })
  const failures: string[] = []
  for (let i = 0; i < STREAMS; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, STREAMS - i) }, async (_, j) => {
      try {
        const s = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
        s.on('error', () => {})
        streams.push(s)
        if (!await echoed(s, Buffer.from(`stream ${i + j}`))) failures.push(`stream ${i + j}: no echo`)
      } catch (err) {
        failures.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`)
      }
    }))
  }
  for (const r of [...srv.refusals.slice(0, 3), ...refusals.slice(0, 3)]) t.comment(`DEBUG ${r.side} ${r.reason} ${r.detail}`)
  t.same(failures.slice(0, 5), [], `every open succeeded and echoed (${failures.length} failures)`)
  t.equal(streams.length, STREAMS, `${STREAMS} streams open`)
  t.same(refusals.filter((r) => r.reason === 'buffer-budget' || r.reason === 'buffer-stall'), [], 'the pool refused none for want of budget')
  t.same(srv.refusals.slice(0, 3), [], `the server refused none (${srv.refusals.length} refusals)`)
  t.ok(pool.stats().sessions >= STREAMS / TUNNEL_DEFAULTS.maxConcurrentStreams, `the pool spread them over ${pool.stats().sessions} sessions (at most ${TUNNEL_DEFAULTS.maxConcurrentStreams} streams each)`)
  for (const [end, budget] of [['server', serverBudget], ['pool', poolBudget]] as const) {
    t.equal(budget.streams(), STREAMS, `${end}: the budget counts ${STREAMS} streams`)
    t.ok(budget.openBytes() <= budget.limits.openBytes, `${end}: open streams reserve ${(budget.openBytes() / MiB).toFixed(1)} MiB ≤ the open share ${(budget.limits.openBytes / MiB).toFixed(1)} MiB`)
  }
  // As the streams multiplied, both ends lowered every session's window to the floor.
  const floor = TUNNEL_DEFAULTS.minStreamWindowBytes
  await waitFor(() => streams.every((s) => s.receiveWindows().stream <= floor) && serverStreams.every((s) => s.receiveWindows().stream <= floor),
    { timeoutMs: 20_000, what: `every stream's window to be at most ${floor} bytes` })
  t.pass(`every stream's receive window is at most ${floor / KiB} KiB, on both ends`)
  const perStream = (poolBudget.openBytes() / STREAMS / KiB).toFixed(1)
  t.comment(`${STREAMS} streams: ${perStream} KiB reserved each; pool ${(poolBudget.reservedBytes() / MiB).toFixed(1)} MiB, server ${(serverBudget.reservedBytes() / MiB).toFixed(1)} MiB of ${(NODE / MiB).toFixed(1)} MiB`)
  // And at the floor window every stream still carries a message larger than its window.
  const big = Buffer.alloc(MESSAGE, 0x62)
  let carried = 0
  for (let i = 0; i < STREAMS; i += BATCH) {
    const ok = await Promise.all(streams.slice(i, i + BATCH).map(async (s) => await echoed(s, big)))
    carried += ok.filter(Boolean).length
  }
  t.equal(carried, STREAMS, `every stream carried ${MESSAGE / KiB} KiB each way at the floor window`)
})

t.test(`30 verified peers' sessions write into all ${STREAMS} streams of a server whose destination never reads: the server stays within its budget`, async (t) => {
  const ca = await testCa()
  const db = await ca.svid('data/db')
  const web = await ca.svid('app/web')
  const evil = await ca.svid('app/evil')
  const budget = NodeBufferBudget.create({ nodeBytes: NODE })
  const sink: TunnelStream[] = []
  t.teardown(() => { for (const s of sink) s.destroy() })
  // The other peers' streams go to a destination that never reads; app/web's echoes.
  const onStream = echoOrSink(web.spiffeId.uri, sink)
  const srv = await startServer(t, { svids: [db], onStream, bufferBudget: budget })
  const { pool } = startPool(t)
  const good = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  good.on('error', () => {})
  t.ok(await echoed(good, Buffer.from('before')), 'a stream of another peer echoes before the flood')

  const PER_STREAM = 32 * KiB
  const sessions: ClientHttp2Session[] = []
  for (let i = 0; i < STREAMS / TUNNEL_DEFAULTS.maxConcurrentStreams; i++) sessions.push(await rawSession(t, srv.port, evil, db.spiffeId.uri))
  const opened: ClientHttp2Stream[] = []
  let answered = 0
  let resets = 0
  const chunk = Buffer.alloc(8 * KiB, 0x65)
  // Each peer stream writes PER_STREAM bytes, reads nothing; a refused one (REFUSED_STREAM:
  // no room yet) is opened again, as a persistent peer would.
  const one = (session: ClientHttp2Session, retries: number): void => {
    if (session.closed || session.destroyed) return
    const s = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.7:80' }, { endStream: false })
    s.on('error', () => {})
    s.once('close', () => {
      if (s.rstCode === constants.NGHTTP2_CONNECT_ERROR) resets++
      if (s.rstCode === constants.NGHTTP2_REFUSED_STREAM && retries > 0) setTimeout(() => { one(session, retries - 1) }, 50)
    })
    s.once('response', () => {
      answered++
      let sent = 0
      const write = (): void => {
        while (sent < PER_STREAM && !s.destroyed) {
          sent += chunk.length
          if (!s.write(chunk)) { s.once('drain', write); return }
        }
      }
      write()
    })
    opened.push(s)
  }
  for (const session of sessions) for (let i = 0; i < TUNNEL_DEFAULTS.maxConcurrentStreams; i++) one(session, 100)
  // While the peers write, and the good stream keeps moving: sample what the server holds.
  let peakHeld = 0
  let peakReserved = 0
  let moving = 0
  let stopped = false
  const mover = (async () => {
    while (!stopped) {
      if (!await echoed(good, Buffer.alloc(4 * KiB, 0x67))) return
      moving++
    }
  })()
  let last = -1
  let still = 0
  // Until nothing changes for 2 s (refused streams are retried for 5 s), at most 30 s.
  for (let i = 0; i < 300 && still < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const held = budget.heldBytes()
    peakHeld = Math.max(peakHeld, held)
    peakReserved = Math.max(peakReserved, budget.reservedBytes())
    const progress = answered + resets
    still = progress === last ? still + 1 : 0
    last = progress
  }
  stopped = true
  await mover
  const stallResets = srv.refusals.filter((r) => r.reason === 'buffer-stall').length
  t.comment(`${answered} streams answered, ${resets} reset (${stallResets} buffer-stall refusals), ${budget.stalledStreams()} backed up now; held at most ${(peakHeld / MiB).toFixed(1)} MiB, reserved at most ${(peakReserved / MiB).toFixed(1)} MiB of ${(NODE / MiB).toFixed(1)} MiB; the good stream echoed ${moving} times meanwhile`)
  t.equal(answered, STREAMS, `every one of the ${STREAMS} streams was answered: they all fit while idle`)
  t.ok(peakReserved <= NODE, 'reservations never exceeded the budget')
  t.ok(peakHeld <= NODE, `held ${(peakHeld / MiB).toFixed(1)} MiB ≤ the ${(NODE / MiB).toFixed(1)} MiB budget (${STREAMS} × ${PER_STREAM / KiB} KiB were sent)`)
  t.ok(resets > 0 && stallResets === resets, `streams whose buffers did not fit were reset (${resets}) and each reported as buffer-stall`)
  t.ok(moving > 0, 'a stream of another peer kept moving during the flood')
  t.ok(await echoed(good, Buffer.from('after')), 'and still echoes after it')
  for (const s of opened) if (!s.destroyed) s.close(constants.NGHTTP2_CANCEL)
  await waitFor(() => budget.streams() <= 1 && budget.stalledBytes() === 0, { timeoutMs: 20_000, what: 'the peers\' streams and their leases to be gone' })
  t.pass('their reservations and leases are returned when the streams close')
})
