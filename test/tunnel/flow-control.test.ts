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

/** Writes `total` bytes at once; resolves with how many have left the writer once progress stops. */
async function sentBeforeStall (s: TunnelStream, total: number): Promise<number> {
  let sent = 0
  for (let n = 0; n < total; n += CHUNK.length) s.write(CHUNK, () => { sent += CHUNK.length })
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

t.test('both ends grant the configured stream and connection windows', async (t) => {
  const cases = [
    { opts: {}, expected: { stream: TUNNEL_DEFAULTS.streamWindowBytes, session: TUNNEL_DEFAULTS.connectionWindowBytes } },
    { opts: { streamWindowBytes: 1 * MiB, connectionWindowBytes: 2 * MiB }, expected: { stream: 1 * MiB, session: 2 * MiB } }
  ]
  for (const { opts, expected } of cases) {
    const { open } = await rig(t, opts)
    const { client, server } = await open()
    // The client's windows govern server → client (downloads), the server's client → server.
    // A new session starts with the window a whole session of streams would fit in, and
    // raises it for its one stream a moment later (buffer-budget.ts).
    const same = (a: { stream: number, session: number }): boolean => a.stream === expected.stream && a.session === expected.session
    await waitFor(() => same(client.receiveWindows()) && same(server.receiveWindows()), { what: `windows ${JSON.stringify(expected)}` })
    t.same(client.receiveWindows(), expected, `client end: ${JSON.stringify(expected)}`)
    t.same(server.receiveWindows(), expected, `server end: ${JSON.stringify(expected)}`)
  }
})

for (const way of ['client → server', 'server → client'] as const) {
  t.test(`${way}: a reader that does not read lets the writer one stream window ahead, no more`, async (t) => {
    const { open } = await rig(t)
    const { client, server } = await open()
    const writer = way === 'client → server' ? client : server
    const window = TUNNEL_DEFAULTS.streamWindowBytes
    const sent = await sentBeforeStall(writer, window + 4 * MiB)
    t.ok(sent >= window, `${(sent / MiB).toFixed(2)} MiB left the writer: the ${window / MiB} MiB stream window (and a larger connection window) is in effect`)
    t.ok(sent <= window + SLACK, `${(sent / MiB).toFixed(2)} MiB: no more than the stream window plus buffers`)
  })
}
