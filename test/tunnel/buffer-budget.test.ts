import t from 'tap'
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import type { Svid } from '../../src/identity/svid'
import type { TunnelRequest, TunnelStream } from '../../src/tunnel'
import { NodeBufferBudget } from '../../src/tunnel/buffer-budget'
import { TUNNEL_DEFAULTS } from '../../src/tunnel/defaults'
import { testCa } from '../identity/certs'
import { rawSession, roundTrip, sleep, startPool, startServer } from './harness'
import { waitFor } from '../helpers/wait'

// A verified peer cannot make a node buffer without bound. Here hostile clients (valid
// SVIDs, raw HTTP/2) open 100 CONNECT streams each and write into every one while the
// destination never reads — the worst a peer can do to a node's memory through the
// tunnel. What the server then holds (bytes received and not yet consumed, in its
// HTTP/2 and TunnelStream buffers) stays within the session's budget for one peer and the
// node's for several, because each stream's window shrinks as streams multiply and a
// stream that does not fit is refused (REFUSED_STREAM). Meanwhile other sessions work.
//
// Without the budget (src/tunnel/buffer-budget.ts) one such session alone holds 100 ×
// the 4 MiB stream window: 400 MiB.

t.setTimeout(60_000)

const MiB = 1024 * 1024
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
  // The evil streams' destination never reads; app/web's echoes.
  const onStream = (req: TunnelRequest): void => {
    const s = req.accept()
    if (s === null) return
    s.on('error', () => {})
    if (req.peerSpiffeId === web.spiffeId.uri) s.pipe(s)
    else sink.push(s)
  }
  const srv = await startServer(t, { svids: [db], onStream, bufferBudget: budget })
  t.teardown(() => { for (const s of sink) s.destroy() })
  const { pool } = startPool(t)
  const openGood = async (): Promise<TunnelStream> => await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
  const hostile = async (svid: Svid): Promise<Flood> => floodStreams(await rawSession(t, srv.port, svid, db.spiffeId.uri))
  return { srv, budget, openGood, hostile, evil }
}

t.test('one verified peer: 100 streams written and never read hold at most the session budget; other sessions keep working', async (t) => {
  const r = await rig(t)
  const before = await r.openGood()
  t.equal(await roundTrip(before, 'ping'), 'ping')
  const early = await r.openGood()
  early.write('opened before, ')
  const flood = await r.hostile(r.evil[0])
  const held = await settle(() => r.srv.server.stats().bufferHeldBytes)
  const stats = r.srv.server.stats()
  t.comment(`hostile session: ${flood.opened} streams answered, ${flood.refused} refused; the server held at most ${(held / MiB).toFixed(1)} MiB, reserved ${(stats.bufferReservedBytes / MiB).toFixed(1)} MiB`)
  t.ok(held <= SESSION, `held ${(held / MiB).toFixed(1)} MiB ≤ the ${SESSION / MiB} MiB session budget (without it: ${STREAMS} × ${TUNNEL_DEFAULTS.streamWindowBytes / MiB} MiB)`)
  t.ok(held >= MiB, 'the peer did fill what it was given (the measurement sees the buffers)')
  t.ok(stats.bufferReservedBytes <= SESSION + 2 * MiB, `reserved ${(stats.bufferReservedBytes / MiB).toFixed(1)} MiB: the hostile session's ≤ its budget, plus app/web's`)
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
  t.ok(floods.every((f) => f.opened > 0), 'each peer got streams')
  t.equal(await roundTrip(early, 'still flowing'), 'opened before, still flowing', 'a stream opened before the flood keeps flowing')
})

t.test('one stream alone keeps the full 4 MiB window (bulk throughput is not traded away)', async (t) => {
  const r = await rig(t)
  const s = await r.openGood()
  t.same(s.receiveWindows().stream, TUNNEL_DEFAULTS.streamWindowBytes, 'the client end grants 4 MiB')
  t.equal(await roundTrip(s, 'x'), 'x')
})
