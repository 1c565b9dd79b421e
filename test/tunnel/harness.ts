import { connect as netConnect, createServer as createNetServer, type Server, type Socket } from 'node:net'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { Svid } from '../../src/identity/svid'
import { tunnelClientOptions } from '../../src/identity/tls-options'
import { relay } from '../../src/proxy/relay'
import { sniOf, TunnelPool, type TunnelPoolOptions, type TunnelRefusal, type TunnelRequest, TunnelServer, type TunnelServerOptions, type TunnelStream } from '../../src/tunnel'
import { FLAG, FRAME, H2_PREFACE, h2Frame } from '../helpers/h2-frames'
import { drain } from '../helpers/net'

// Both ends of the tunnel on 127.0.0.1, wired as the agent will wire them, with the real
// relay on each side:
//
//   app ⇄ [outbound: relay] ⇄ TunnelPool ══ mTLS h2 ══ TunnelServer ⇄ [inbound: relay] ⇄ backend
//
// The "outbound" here is a plain loopback listener whose every connection is tunnelled
// to a fixed authority; the server's onStream connects to the authority (a loopback
// backend) and relays, or refuses 503 when it cannot connect. The relay takes net.Socket,
// and a TunnelStream stands in for one (see docs/tunnel.md: the proxy should widen its type).

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

export const asSocket = (s: TunnelStream): Socket => s as unknown as Socket

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The server's onStream of the agent, minus policy: connect to the authority, then 200 + relay. */
export function connectAndRelay (log?: TunnelRequest[]): (req: TunnelRequest) => void {
  return (req) => {
    log?.push(req)
    const upstream = netConnect({ host: req.authority.address, port: req.authority.port, allowHalfOpen: true })
    upstream.once('error', (err) => { req.refuse(503, `connect to ${req.authorityText}: ${err.message}`) })
    req.signal.addEventListener('abort', () => { upstream.destroy() })
    upstream.once('connect', () => {
      const stream = req.accept()
      if (stream === null) { upstream.destroy(); return }
      relay(asSocket(stream), upstream, () => {})
    })
  }
}

export interface ServerUnderTest {
  server: TunnelServer
  port: number
  refusals: TunnelRefusal[]
}

export async function startServer (t: Teardown, opts: Partial<TunnelServerOptions> & { svids?: Svid[] }): Promise<ServerUnderTest> {
  const refusals: TunnelRefusal[] = []
  const { svids = [], ...rest } = opts
  const bySni = new Map(svids.map((s) => [sniOf(s.spiffeId), s]))
  const server = new TunnelServer({
    selectSvid: (sni) => bySni.get(sni) ?? null,
    onStream: connectAndRelay(),
    onRefused: (r) => { refusals.push(r) },
    ...rest
  })
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await server.close(200) })
  return { server, port, refusals }
}

export function startPool (t: Teardown, opts: TunnelPoolOptions = {}): { pool: TunnelPool, refusals: TunnelRefusal[] } {
  const refusals: TunnelRefusal[] = []
  const pool = new TunnelPool({ onRefused: (r) => { refusals.push(r) }, ...opts })
  t.teardown(async () => { await pool.close(200) })
  return { pool, refusals }
}

export async function listen (t: Teardown, onSocket: (s: Socket) => void, host = '127.0.0.1'): Promise<{ server: Server, port: number }> {
  const server = createNetServer({ allowHalfOpen: true, pauseOnConnect: true }, onSocket)
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return { server, port: (server.address() as { port: number }).port }
}

/**
 * The outbound side: a loopback listener whose connections go through `pool` to
 * `authority` behind the tunnel server, relayed. Failures to open reset the app's socket.
 */
export async function startOutbound (t: Teardown, pool: TunnelPool, o: { source: () => Svid, expected: string, tunnelPort: number, authority: string }): Promise<{ port: number, errors: Error[] }> {
  const errors: Error[] = []
  const { port } = await listen(t, (app) => {
    app.on('error', () => {})
    pool.open({ sourceSvid: o.source, expectedPeer: o.expected, node: { address: '127.0.0.1', port: o.tunnelPort }, authority: o.authority })
      .then((stream) => { relay(app, asSocket(stream), () => {}) },
        (err: Error) => { errors.push(err); app.resetAndDestroy() })
  })
  return { port, errors }
}

/** A backend that hands each accepted socket (half-open capable) to `onSocket`. */
export async function backend (t: Teardown, onSocket: (s: Socket) => void, host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<Socket>()
  const { port } = await listen(t, (s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.resume()
    onSocket(s)
  }, host)
  t.teardown(() => { for (const s of sockets) s.destroy() })
  return port
}

/**
 * A hand-driven HTTP/2 client on a verified TLS connection (for what the pool never
 * sends: other methods, bad authorities, huge headers). `sni` defaults to the identity's.
 */
export async function rawSession (t: Teardown, port: number, svid: Svid, serverId: string, opts: { maxSendHeaderBlockLength?: number } = {}): Promise<ClientHttp2Session> {
  const socket: TLSSocket = tlsConnect({ ...tunnelClientOptions(svid), host: '127.0.0.1', port, servername: sniOf(serverId) })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const session = http2Connect(`https://127.0.0.1:${port}`, { createConnection: () => socket, ...opts })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  return session
}

/** Sends a request on a raw session; resolves with the status, or "rst:<code>" if reset first. */
export async function statusOf (session: ClientHttp2Session, headers: Record<string, string>): Promise<number | string> {
  const stream = session.request(headers, { endStream: false })
  stream.on('error', () => {})
  return await new Promise((resolve) => {
    stream.once('response', (h) => { resolve(Number(h[':status'])); stream.close() })
    stream.once('close', () => { resolve(`rst:${stream.rstCode ?? ''}`) })
  })
}

/** onStream that accepts and echoes (FIN answered with FIN). */
export function echo (log?: TunnelRequest[]): (req: TunnelRequest) => void {
  return (req) => {
    log?.push(req)
    const s = req.accept()
    if (s === null) return
    s.on('error', () => {})
    s.pipe(s)
  }
}

/** Writes `text`, ends, and resolves with what came back before the peer's FIN. */
/** onStream for the hostile-reader cases: `echoFor`'s streams are echoed, every other peer's is accepted and never read (kept in `sink`). */
export function echoOrSink (echoFor: string, sink: TunnelStream[]): (req: TunnelRequest) => void {
  return (req) => {
    const s = req.accept()
    if (s === null) return
    s.on('error', () => {})
    if (req.peerSpiffeId === echoFor) s.pipe(s)
    else sink.push(s)
  }
}

export async function roundTrip (s: TunnelStream, text: string): Promise<string> {
  const done = drain(s)
  s.end(text)
  const r = await done
  if (r.ended !== 'end') throw new Error(`stream ended with ${r.code ?? 'an error'}`)
  return r.data.toString()
}

/**
 * A non-compliant HTTP/2 client written frame by frame: preface, an empty SETTINGS that
 * never acknowledges the server's, then one CONNECT whose header block carries
 * `paddingBytes` of an extra header (HEADERS + CONTINUATION frames of 16 KiB). Until its
 * SETTINGS are acknowledged, nghttp2 still applies the protocol's default header-list
 * limit, so this reaches the server's own check. Resolves with the first frame the
 * server sends on stream 1: HEADERS (an answer) or RST_STREAM.
 */
export async function rawConnectWithHeaders (t: Teardown, port: number, svid: Svid, serverId: string, paddingBytes: number): Promise<{ type: 'headers' | 'rst_stream', flags: number }> {
  const socket: TLSSocket = tlsConnect({ ...tunnelClientOptions(svid), host: '127.0.0.1', port, servername: sniOf(serverId) })
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const block = Buffer.concat([
    literal(0x02, null, 'CONNECT'), // :method (static index 2, value not indexed)
    literal(0x01, null, '10.0.0.7:80'), // :authority (static index 1)
    literal(0x00, 'x-padding', 'x'.repeat(paddingBytes))
  ])
  const frames: Uint8Array[] = [H2_PREFACE, h2Frame(FRAME.SETTINGS, 0, 0)]
  for (let off = 0; off < block.length; off += 16_384) {
    const last = off + 16_384 >= block.length
    frames.push(h2Frame(off === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, last ? FLAG.END_HEADERS : 0, 1, block.subarray(off, off + 16_384)))
  }
  socket.write(Buffer.concat(frames))
  let buf = Buffer.alloc(0)
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no answer on stream 1')) }, 3000)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3)
        if (buf.length < 9 + len) return
        const type = buf[3]
        const flags = buf[4]
        const stream = buf.readUInt32BE(5) & 0x7fffffff
        buf = buf.subarray(9 + len)
        if (stream === 1 && (type === 0x1 || type === 0x3)) {
          clearTimeout(timer)
          resolve({ type: type === 0x1 ? 'headers' : 'rst_stream', flags })
          return
        }
      }
    })
  })
}

/** HPACK literal without indexing (RFC 7541 §6.2.2): by static name index, or with a new name. */
function literal (nameIndex: number, name: string | null, value: string): Buffer {
  const parts: Uint8Array[] = [Buffer.from([nameIndex])]
  if (name !== null) parts.push(hpackInt(Buffer.byteLength(name)), Buffer.from(name))
  parts.push(hpackInt(Buffer.byteLength(value)), Buffer.from(value))
  return Buffer.concat(parts)
}

/** A string length with a 7-bit prefix, Huffman bit clear (RFC 7541 §5.1). */
function hpackInt (n: number): Buffer {
  if (n < 127) return Buffer.from([n])
  const out = [127]
  n -= 127
  while (n >= 128) { out.push((n & 0x7f) | 0x80); n >>= 7 }
  out.push(n)
  return Buffer.from(out)
}

/**
 * A TCP hop in front of `port` that can freeze (stop forwarding, like a peer whose node
 * vanished without a FIN) or cut (reset every connection through it) while it keeps
 * accepting new ones. `delayMs` holds every chunk that long each way (RTT = 2 × delayMs).
 */
export async function tcpHop (t: Teardown, port: number, opts: { delayMs?: number } = {}): Promise<{ port: number, freeze: () => void, cut: () => void }> {
  const delayMs = opts.delayMs ?? 0
  let frozen = false
  const live = new Set<Socket>()
  const hop = await listen(t, (c) => {
    const u = netConnect({ host: '127.0.0.1', port })
    for (const [a, b] of [[c, u], [u, c]]) {
      live.add(a)
      a.once('close', () => { live.delete(a); b.destroy() })
      a.on('error', () => {})
      a.on('data', (d: Buffer) => {
        if (frozen) return
        if (delayMs === 0) b.write(d)
        else setTimeout(() => { if (!b.destroyed) b.write(d) }, delayMs)
      })
    }
    c.resume()
  })
  t.teardown(() => { for (const s of live) s.destroy() })
  return {
    port: hop.port,
    freeze: () => { frozen = true },
    cut: () => { for (const s of [...live]) s.resetAndDestroy() }
  }
}
