import { join } from 'node:path'
import { connect as h2connect, createServer as h2server, type ClientHttp2Session } from 'node:http2'
import { createServer } from 'node:http'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import t from 'tap'
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { WebSocket, WebSocketServer } = require('ws')
import { startEngine, type Teardown } from '../helpers/http-harness'
import { waitFor } from '../helpers/wait'

const def = protoLoader.loadSync(join(__dirname, '../fixtures/apps/echo.proto'), { keepCase: true, longs: Number, defaults: true })
const { Echo } = (grpc.loadPackageDefinition(def) as any).ferry.fixtures

async function grpcServer (t: Teardown, name: string): Promise<number> {
  const server = new grpc.Server()
  server.addService(Echo.service, {
    Unary (call: any, cb: any) {
      const req = call.request
      const md = new grpc.Metadata()
      for (const p of req.trailers) md.add(p.key, p.value)
      if (req.status !== 0) { cb({ code: req.status, details: req.status_message, metadata: md }); return }
      cb(null, { message: req.message, seq: 1, server: name, metadata: Object.entries(call.metadata.getMap()).map(([key, value]) => ({ key, value: String(value) })) }, md)
    },
    ServerStream (call: any) {
      let seq = 0
      const count = call.request.count
      const next = (): void => {
        while (seq < count) { seq++; if (!call.write({ message: call.request.message, seq, server: name, payload: Buffer.alloc(call.request.payload_bytes, 0x61) })) { call.once('drain', next); return } }
        call.end()
      }
      next()
    },
    ClientStream (call: any, cb: any) {
      const got: string[] = []
      call.on('data', (r: any) => got.push(r.message))
      call.on('end', () => { cb(null, { message: got.join(','), seq: got.length, server: name }) })
    },
    Bidi (call: any) {
      call.on('data', (r: any) => { call.write({ message: r.message, server: name }) })
      call.on('end', () => { call.end() })
    }
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => { if (err !== null) reject(err); else resolve(p) }))
  t.teardown(() => { server.forceShutdown() })
  return port
}

function client (t: Teardown, port: number): any {
  const c = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  t.teardown(() => { c.close() })
  return c
}

const unary = (c: any, req: any, md = new grpc.Metadata()): Promise<{ err: any, reply: any, trailers: any }> => new Promise((resolve) => {
  let trailers: any = null
  const call = c.Unary(req, md, (err: any, reply: any) => { setImmediate(() => { resolve({ err, reply, trailers }) }) })
  call.on('status', (s: any) => { trailers = s.metadata.getMap() })
})

t.test('gRPC through the engine: unary balanced per call, trailers, trailers-only errors, streams', async (t) => {
  const a = await grpcServer(t, 'a')
  const b = await grpcServer(t, 'b')
  const fx = await startEngine(t, { version: 'http2', endpoints: [a, b] })
  const c = client(t, fx.port)
  const servers: string[] = []
  for (let i = 0; i < 4; i++) {
    const r = await unary(c, { message: `m${i}`, trailers: [{ key: 'x-t', value: `v${i}` }] })
    t.error(r.err)
    t.equal(r.reply.message, `m${i}`)
    t.equal(r.trailers['x-t'], `v${i}`, 'trailers arrive')
    servers.push(r.reply.server)
  }
  t.same(servers, ['a', 'b', 'a', 'b'], 'one client connection, calls balanced per call')
  const e = await unary(c, { message: 'x', status: 5, status_message: 'not here', trailers: [{ key: 'x-why', value: 'gone' }] })
  t.equal(e.err.code, 5)
  t.equal(e.err.details, 'not here')
  t.equal(e.trailers['x-why'], 'gone')
  const recs = fx.records
  t.match(recs[0], { protocol: 'grpc', httpVersion: '2', method: 'POST', path: '/ferry.fixtures.Echo/Unary', responseCode: 200, grpcStatus: 0 })
  t.equal(recs[4].grpcStatus, 5)
  // Server stream with large messages (flow control both ways).
  const got = await new Promise<number>((resolve, reject) => {
    let n = 0
    const call = c.ServerStream({ message: 's', count: 200, payload_bytes: 100_000 })
    call.on('data', () => { n++ })
    call.on('end', () => { resolve(n) })
    call.on('error', reject)
  })
  t.equal(got, 200)
  const joined = await new Promise<any>((resolve, reject) => {
    const call = c.ClientStream((err: any, r: any) => { if (err !== null) reject(err); else resolve(r) })
    for (let i = 0; i < 5; i++) call.write({ message: `c${i}` })
    call.end()
  })
  t.equal(joined.message, 'c0,c1,c2,c3,c4')
  const echoed = await new Promise<string[]>((resolve, reject) => {
    const out: string[] = []
    const call = c.Bidi()
    call.on('data', (r: any) => { out.push(r.message); if (out.length < 3) call.write({ message: `b${out.length}` }); else call.end() })
    call.on('end', () => { resolve(out) })
    call.on('error', reject)
    call.write({ message: 'b0' })
  })
  t.same(echoed, ['b0', 'b1', 'b2'])
  // Each call's gRPC messages, counted per direction from the body frames.
  await waitFor(() => recs.length === 8, { timeoutMs: 3000, what: 'every call recorded' })
  const messages = (path: string): Array<[number | undefined, number | undefined]> => recs.filter((r) => r.path === `/ferry.fixtures.Echo/${path}`).map((r) => [r.requestMessages, r.responseMessages])
  t.same(messages('Unary'), [[1, 1], [1, 1], [1, 1], [1, 1], [1, 0]], 'unary: one each way; an error sends no response message')
  t.same(messages('ServerStream'), [[1, 200]])
  t.same(messages('ClientStream'), [[5, 1]])
  t.same(messages('Bidi'), [[3, 3]])
})

t.test('gRPC: denied is PERMISSION_DENIED trailers-only, no endpoint is UNAVAILABLE, the connection stays usable', async (t) => {
  const a = await grpcServer(t, 'a')
  const fx = await startEngine(t, {
    version: 'http2',
    endpoints: [a],
    reporter: 'destination',
    authorizer: { record: { authz: null } as any, rateLimit: null, authorize: (v) => v.header('x-deny') === undefined }
  })
  const c = client(t, fx.port)
  const md = new grpc.Metadata()
  md.set('x-deny', '1')
  const d = await unary(c, { message: 'x' }, md)
  t.equal(d.err.code, grpc.status.PERMISSION_DENIED)
  t.equal(d.err.details, 'RBAC: access denied')
  const ok = await unary(c, { message: 'y' })
  t.error(ok.err)
  fx.endpoints = []
  const u = await unary(c, { message: 'z' })
  t.equal(u.err.code, grpc.status.UNAVAILABLE)
  t.match(fx.records.map((r) => [r.responseFlags, r.grpcStatus]), [['RBAC', 7], ['-', 0], ['UH', 14]])
})

t.test('plain HTTP/2 requests with bodies, and an upstream reset after the response began resets the stream', async (t) => {
  const srv = h2server()
  srv.on('stream', (stream, headers) => {
    stream.on('error', () => {})
    if (headers[':path'] === '/cut') { stream.respond({ ':status': 200 }); stream.write('part'); setTimeout(() => { stream.session?.destroy() }, 20); return }
    let n = 0
    stream.on('data', (c: Buffer) => { n += c.length })
    stream.on('end', () => { stream.respond({ ':status': 201, 'x-n': String(n) }); stream.end('done') })
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  const fx = await startEngine(t, { version: 'http2', endpoints: [(srv.address() as { port: number }).port] })
  const session: ClientHttp2Session = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { session.close() })
  const r = await new Promise<{ status: number, n: string, body: string }>((resolve, reject) => {
    const s = session.request({ ':method': 'POST', ':path': '/up' })
    let body = ''
    s.on('response', (h) => { s.on('data', (c: Buffer) => { body += String(c) }); s.on('end', () => { resolve({ status: Number(h[':status']), n: String(h['x-n']), body }) }) })
    s.on('error', reject)
    s.end(Buffer.alloc(300_000, 1))
  })
  t.same(r, { status: 201, n: '300000', body: 'done' })
  const cut = await new Promise<string>((resolve) => {
    const s = session.request({ ':path': '/cut' })
    s.on('error', (err: any) => { resolve(err.code) })
    s.on('close', () => { resolve(`closed ${s.rstCode}`) })
    s.resume()
  })
  t.not(cut, 'closed 0', 'the stream is reset, not ended cleanly')
  t.equal(fx.records[1].responseFlags, 'UC')
})

t.test('WebSocket over HTTP/1.1 Upgrade is passed through as a byte tunnel', async (t) => {
  const http = createServer()
  const wss = new WebSocketServer({ server: http })
  wss.on('connection', (ws: any) => { ws.on('message', (m: any) => { ws.send(`echo ${String(m)}`) }) })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { wss.close(); http.closeAllConnections(); http.close() })
  const fx = await startEngine(t, { version: 'http1', endpoints: [(http.address() as { port: number }).port] })
  const ws = new WebSocket(`ws://127.0.0.1:${fx.port}/ws`)
  const got = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => { ws.send('hi') })
    ws.on('message', (m: any) => { resolve(String(m)) })
    ws.on('error', reject)
  })
  t.equal(got, 'echo hi')
  ws.close()
  await new Promise((resolve) => ws.on('close', resolve))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(fx.records[0], { method: 'GET', path: '/ws', responseCode: 101 })
})
