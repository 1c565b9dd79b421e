import t from 'tap'
import type { TunnelRequest, TunnelStream } from '../../src/tunnel'
import { NODE_HIGH_WATER_MARK, TUNNEL_DEFAULTS } from '../../src/tunnel/defaults'
import { testCa } from '../identity/certs'
import { waitFor } from '../helpers/wait'
import { sleep, startPool, startServer } from './harness'

// The HTTP/2 windows the tunnel announces are the ones in effect, on both ends.
//
// Guards a bug that cost bulk downloads 2–4× (benchmarks/notes-bulk.md): the client set
// its connection window on the session's 'connect' event, which had already been emitted,
// so the server → client direction ran on the protocol's 64 KiB and stalled on a
// WINDOW_UPDATE every 32 KiB. Node acknowledges connection-level window as soon as data
// arrives (read or not), so a too-small connection window shows only in throughput, not
// in what a reader holds: the windows are therefore read from each end.
//
// The stream window is also the bound on a reader that stops: a write's callback runs
// once its bytes have left as DATA, which needs window, so the writer gets exactly one
// stream window ahead and then stops (a slow peer cannot make us buffer without limit).

t.setTimeout(30_000)

const KiB = 1024
const MiB = 1024 * KiB
const CHUNK = Buffer.alloc(64 * KiB)
/**
 * What may leave the writer besides the window: what the reader's buffers take while it
 * does not read (receiveStallBytes), and what the writer's HTTP/2 stream accepts before
 * it sends (its high-water mark and the write that crossed it).
 */
const SLACK = TUNNEL_DEFAULTS.receiveStallBytes + NODE_HIGH_WATER_MARK + CHUNK.length

/** Writes `total` bytes at once, in `chunk`s; resolves with how many have left the writer once progress stops. */
async function sentBeforeStall (s: TunnelStream, total: number, chunk = CHUNK): Promise<number> {
  let sent = 0
  for (let n = 0; n < total; n += chunk.length) s.write(chunk, () => { sent += chunk.length })
  let last = -1
  while (sent !== last && sent < total) {
    last = sent
    await sleep(300)
  }
  return sent
}

async function rig (t: Parameters<typeof startPool>[0], windows: { streamWindowBytes?: number, connectionWindowBytes?: number } = {}) {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const db = await ca.svid('data/db')
  const accepted: TunnelStream[] = []
  const waiting: Array<(s: TunnelStream) => void> = []
  const onStream = (req: TunnelRequest): void => {
    const s = req.accept()
    if (s === null) return
    s.on('error', () => {})
    const w = waiting.shift()
    if (w !== undefined) w(s)
    else accepted.push(s)
  }
  const srv = await startServer(t, { svids: [db], onStream, ...windows })
  const { pool } = startPool(t, windows)
  /** A client stream and the server's end of it; neither is read. */
  const open = async (): Promise<{ client: TunnelStream, server: TunnelStream }> => {
    const server = new Promise<TunnelStream>((resolve) => {
      const s = accepted.shift()
      if (s !== undefined) resolve(s)
      else waiting.push(resolve)
    })
    const client = await pool.open({ sourceSvid: () => web, expectedPeer: db.spiffeId.uri, node: { address: '127.0.0.1', port: srv.port }, authority: '10.0.0.7:80' })
    client.on('error', () => {})
    const s = await server
    t.teardown(() => { client.destroy(); s.destroy() })
    return { client, server: s }
  }
  return { open }
}

t.test('both ends grant the configured connection window at once, and the configured stream window once a stream moves bulk data', async (t) => {
  const cases = [
    { opts: {}, expected: { stream: TUNNEL_DEFAULTS.streamWindowBytes, session: TUNNEL_DEFAULTS.connectionWindowBytes } },
    { opts: { streamWindowBytes: 1 * MiB, connectionWindowBytes: 2 * MiB }, expected: { stream: 1 * MiB, session: 2 * MiB } }
  ]
  for (const { opts, expected } of cases) {
    const { open } = await rig(t, opts)
    const { client, server } = await open()
    // The client's windows govern server → client (downloads), the server's client → server.
    // A new stream is granted the floor; its window grows while it is held back by it
    // (session-buffers.ts), up to the configured one.
    const floor = { stream: TUNNEL_DEFAULTS.minStreamWindowBytes, session: expected.session }
    const same = (a: { stream: number, session: number }, b: { stream: number, session: number }): boolean => a.stream === b.stream && a.session === b.session
    await waitFor(() => same(client.receiveWindows(), floor) && same(server.receiveWindows(), floor), { what: `windows ${JSON.stringify(floor)}` })
    t.same(client.receiveWindows(), floor, `client end, idle: ${JSON.stringify(floor)}`)
    t.same(server.receiveWindows(), floor, `server end, idle: ${JSON.stringify(floor)}`)
    // Bulk both ways, each end reading as it comes, until both windows have grown.
    client.resume()
    server.resume()
    const grownTo = (s: TunnelStream): boolean => s.receiveWindows().stream > expected.stream / 2
    const deadline = Date.now() + 20_000
    while (!(grownTo(client) && grownTo(server)) && Date.now() < deadline) {
      await Promise.all([client, server].map(async (s) => { if (!s.write(CHUNK)) await new Promise((resolve) => s.once('drain', resolve)) }))
    }
    t.ok(grownTo(client), `client end: the stream window grew to ${(client.receiveWindows().stream / KiB).toFixed(0)} KiB left of ${expected.stream / KiB} KiB`)
    t.ok(grownTo(server), `server end: the stream window grew to ${(server.receiveWindows().stream / KiB).toFixed(0)} KiB left of ${expected.stream / KiB} KiB`)
    t.equal(client.receiveWindows().session > expected.session / 2 && server.receiveWindows().session > expected.session / 2, true, 'the connection windows are the configured ones')
  }
})

for (const way of ['client → server', 'server → client'] as const) {
  t.test(`${way}: a reader that does not read lets the writer one stream window ahead, no more`, async (t) => {
    const { open } = await rig(t)
    const { client, server } = await open()
    const writer = way === 'client → server' ? client : server
    const reader = way === 'client → server' ? server : client
    // The window the reader grants: the floor, as it never reads (nothing to grow on).
    const window = reader.receiveWindows().stream
    t.equal(window, TUNNEL_DEFAULTS.minStreamWindowBytes, `the reader grants ${window / KiB} KiB`)
    // Pieces smaller than the window: a write is counted once it has left.
    const sent = await sentBeforeStall(writer, window + 2 * SLACK, Buffer.alloc(1 * KiB))
    t.ok(sent >= window, `${(sent / KiB).toFixed(0)} KiB left the writer: the ${window / KiB} KiB stream window is in effect`)
    t.ok(sent <= window + SLACK, `${(sent / KiB).toFixed(0)} KiB: no more than the stream window plus buffers (${(window + SLACK) / KiB} KiB)`)
  })
}
