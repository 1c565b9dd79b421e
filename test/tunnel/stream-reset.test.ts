import t, { type Test } from 'tap'
import { type ClientHttp2Stream, connect, constants, createServer, type Http2Stream, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { TunnelStream } from '../../src/tunnel/tunnel-stream'

// A TunnelStream's reset on the wire, seen by a plain HTTP/2 peer (h2c on 127.0.0.1: the
// frames are what matters here, not TLS): a RST_STREAM CONNECT_ERROR and nothing before it.
//
// Guards `abortH2` (src/tunnel/tunnel-stream.ts): Node's close(code) on a stream whose
// writable side is still open first ends it — an empty DATA frame with END_STREAM — and
// only then sends the RST_STREAM. A peer that reads the two apart (they are, when the
// session's socket is busy) passes the FIN on before the reset: an app saw its cut
// connection end as if complete. A raw Node stream shows the order: 'end' with no rstCode
// yet is an END_STREAM read before any RST_STREAM.

const ENDS = { peerSpiffeId: 'spiffe://t/ns/a/sa/a', peerCertSerial: '01', localSpiffeId: 'spiffe://t/ns/b/sa/b', authority: '10.0.0.1:80', remoteAddress: '127.0.0.1', remotePort: 1 }

interface Seen { events: string[], closed: Promise<void> }

/** What a raw peer stream reads: data, 'end' (with the rstCode known then), 'close' (with its rstCode). */
function watch (s: Http2Stream): Seen {
  const events: string[] = []
  s.on('data', () => {})
  s.on('error', () => {})
  s.on('end', () => { events.push(`end rst=${String(s.rstCode ?? 0)}`) })
  const closed = new Promise<void>((resolve) => { s.on('close', () => { events.push(`close rst=${String(s.rstCode)}`); resolve() }) })
  return { events, closed }
}

async function pair (t: Test): Promise<{ client: ClientHttp2Stream, server: ServerHttp2Stream }> {
  const h2 = createServer()
  const accepted = new Promise<ServerHttp2Stream>((resolve) => { h2.once('stream', (s) => { s.respond({ ':status': 200 }); resolve(s) }) })
  await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve))
  const session = connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`)
  t.teardown(async () => {
    session.destroy()
    await new Promise((resolve) => h2.close(resolve))
  })
  const client = session.request({ ':method': 'CONNECT', ':authority': ENDS.authority }, { endStream: false })
  const server = await accepted
  await new Promise((resolve) => client.once('response', resolve))
  return { client, server }
}

for (const side of ['server', 'client'] as const) {
  t.test(`a ${side}-side TunnelStream reset mid-stream: RST_STREAM CONNECT_ERROR, no END_STREAM before it`, async (t) => {
    const { client, server } = await pair(t)
    const ours = new TunnelStream(side === 'server' ? server : client, ENDS)
    const peer = watch(side === 'server' ? client : server)
    ours.on('data', () => {})
    ours.on('error', () => {})
    // Bytes both ways first, as in a live connection; then the reset, with nothing queued.
    ours.write('from us')
    ;(side === 'server' ? client : server).write('to us')
    await new Promise((resolve) => ours.once('data', resolve))
    ours.resetAndDestroy()
    await peer.closed
    t.same(peer.events.filter((e) => e.startsWith('end rst=0')), [], `no END_STREAM read before the reset (${peer.events.join(', ')})`)
    t.equal(peer.events.at(-1), `close rst=${constants.NGHTTP2_CONNECT_ERROR}`, 'closed by RST_STREAM CONNECT_ERROR')
  })
}
