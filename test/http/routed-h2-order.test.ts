import { connect as netConnect, createServer as netServer, type Socket } from 'node:net'
import { connect as h2connect, createServer as h2server, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2'
import { Duplex } from 'node:stream'
import t from 'tap'
import type { RelayEnd } from '../../src/proxy/relay'
import { dialLoopback, startEngine, type Teardown } from '../helpers/http-harness'
import { targetOf, testPlan } from '../helpers/plans'

// A routed HTTP/2 request whose upstream sends its response headers and its body in the
// same write (as a gRPC server does for a unary call): the client gets the upstream's
// headers (content-type included), then the body, then the trailers — every time, over
// one pooled upstream session. The upstream connection is a plain Duplex, as a tunnel
// stream is (Node's HTTP/2 session reads it through a JS stream, where DATA that came in
// the same read as HEADERS is pushed before 'response' is emitted); between the engine
// and the upstream, a relay passes the upstream's bytes on in batches, so that frames
// written apart arrive in one read.

/** A gRPC-like h2c server: each stream answered with headers, one message and grpc-status trailers, all in one tick. */
async function grpcLike (t: Teardown): Promise<number> {
  const server = h2server()
  const sessions = new Set<ServerHttp2Session>()
  server.on('session', (s) => { sessions.add(s) })
  server.on('stream', (stream) => {
    stream.on('error', () => {})
    stream.resume()
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', 'x-served-by': 'up' }, { waitForTrailers: true })
      stream.once('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '0' }) })
      stream.end(Buffer.from([0, 0, 0, 0, 3, 1, 2, 3]))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sessions) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as { port: number }).port
}

/** A TCP relay to `port` that holds what the upstream sends for a few milliseconds and passes it on in one write. */
async function batching (t: Teardown, port: number): Promise<number> {
  const sockets = new Set<Socket>()
  const relay = netServer((down) => {
    const up = netConnect({ host: '127.0.0.1', port })
    sockets.add(down).add(up)
    down.on('error', () => {})
    up.on('error', () => {})
    down.pipe(up)
    let held: Buffer[] = []
    up.on('data', (c: Buffer) => {
      if (held.push(c) > 1) return
      setTimeout(() => { const b = Buffer.concat(held); held = []; if (!down.destroyed) down.write(b) }, 5)
    })
    up.on('close', () => { setTimeout(() => { down.destroy() }, 10) })
    down.on('close', () => { up.destroy() })
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => relay.close(resolve))
  })
  return (relay.address() as { port: number }).port
}

/** A connection to `port` seen through a Duplex that is not a socket (as a tunnel stream is). */
async function dialDuplex (port: number): Promise<RelayEnd> {
  const sock = await dialLoopback(port)
  const d = new Duplex({
    read () { sock.resume() },
    write (chunk: Buffer, _enc, cb) { sock.write(chunk, cb) },
    final (cb) { sock.end(); cb() },
    destroy (err, cb) { sock.destroy(); cb(err) }
  })
  sock.on('data', (c: Buffer) => { if (!d.push(c)) sock.pause() })
  sock.on('end', () => { d.push(null) })
  sock.on('close', () => { d.destroy() })
  return d as unknown as RelayEnd
}

t.test('http2 routed: response headers before the body it came with, every call', async (t) => {
  const up = await batching(t, await grpcLike(t))
  const fx = await startEngine(t, {
    version: 'http2',
    endpoints: [up],
    route: (_v, record) => {
      const plan = testPlan({ ports: [up] }, record).plan
      const target = { ...targetOf(up, record), key: `duplex|127.0.0.1:${up}`, dial: async () => await dialDuplex(up) }
      return {
        kind: 'forward',
        plan: {
          ...plan,
          attempt: (tried) => {
            const a = plan.attempt(tried)
            return typeof a === 'string' ? a : { ...a, target }
          }
        }
      }
    }
  })
  const client = h2connect(`http://127.0.0.1:${fx.port}`)
  client.on('error', () => {})
  t.teardown(() => { client.destroy() })
  const N = 50
  for (let i = 0; i < N; i++) {
    const answer = await new Promise<{ headers: IncomingHttpHeaders, body: Buffer, trailers: IncomingHttpHeaders | null, error: string | null }>((resolve) => {
      const st = client.request({ ':method': 'POST', ':path': '/pkg.Svc/Echo', 'content-type': 'application/grpc', te: 'trailers' })
      let headers: IncomingHttpHeaders = {}
      let trailers: IncomingHttpHeaders | null = null
      const chunks: Buffer[] = []
      st.on('response', (h) => { headers = h })
      st.on('trailers', (h) => { trailers = h })
      st.on('data', (c: Buffer) => chunks.push(c))
      st.on('error', (err) => { resolve({ headers, body: Buffer.concat(chunks), trailers, error: err.message }) })
      st.on('close', () => { resolve({ headers, body: Buffer.concat(chunks), trailers, error: null }) })
      st.end(Buffer.from([0, 0, 0, 0, 0]))
    })
    if (answer.error !== null || answer.headers['content-type'] !== 'application/grpc+proto' || answer.headers['x-served-by'] !== 'up' ||
      answer.body.length !== 8 || answer.trailers?.['grpc-status'] !== '0') {
      t.fail(`call ${i}: ${JSON.stringify({ ...answer, body: answer.body.toString('hex') })}`)
      return
    }
  }
  t.pass(`${N} calls: the upstream's headers, body and trailers, in order`)
  t.equal(fx.engine.deps.pools.size().http2, 1, 'one pooled upstream session')
})
