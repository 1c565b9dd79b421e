import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as h2connect, createServer as h2server, type ServerHttp2Stream } from 'node:http2'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import t from 'tap'
import type { Teardown } from '../helpers/http-harness'
import { routed } from '../helpers/plans'
import { waitFor } from '../helpers/wait'

// A plan's request timeout and per-try timeout (attempts.ts): 504 UT after the time (gRPC
// DEADLINE_EXCEEDED), and the endpoint sees its request canceled — HTTP/1.1 its
// connection closed, HTTP/2 its stream reset, a gRPC handler its call cancelled.

/** An HTTP/1.1 server that answers after `ms` unless the request is canceled first (counted). */
async function sleeper (t: Teardown, ms: number, seen: { canceled: number, answered: number }): Promise<number> {
  const s = createServer((req: IncomingMessage, res: ServerResponse) => {
    const timer = setTimeout(() => { seen.answered++; res.end('late') }, ms)
    res.on('close', () => {
      if (!res.writableFinished) { seen.canceled++; clearTimeout(timer) }
    })
    req.resume()
  })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as { port: number }).port
}

function send (port: number): Promise<{ status: number, body: string, ms: number }> {
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: new Agent() }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text, ms: Date.now() - t0 }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('HTTP/1.1: a request timeout of 500 ms against a 2 s backend answers 504 UT after 0.5 s, and the backend sees the request canceled', async (t) => {
  const seen = { canceled: 0, answered: 0 }
  const slow = await sleeper(t, 2000, seen)
  const fx = await routed(t, { ports: [slow], timeoutMs: 500 })
  const r = await send(fx.port)
  t.equal(r.status, 504)
  t.equal(r.body, 'upstream request timeout')
  t.ok(r.ms >= 480 && r.ms < 900, `answered after ${r.ms} ms`)
  await waitFor(() => seen.canceled === 1, { timeoutMs: 2000 })
  t.equal(seen.answered, 0)
  t.match(fx.logs[0].outcomes, [{ kind: 'timeout' }])
  t.match(fx.records[0], { responseCode: 504, responseFlags: 'UT', attempts: 1 })
})

t.test('HTTP/2: the timed-out upstream stream is reset with CANCEL', async (t) => {
  const codes: number[] = []
  const s = h2server()
  s.on('stream', (stream: ServerHttp2Stream) => {
    const timer = setTimeout(() => { if (!stream.closed) { stream.respond({ ':status': 200 }); stream.end('late') } }, 2000)
    stream.on('close', () => { clearTimeout(timer); codes.push(stream.rstCode) })
    stream.on('error', () => {})
  })
  const sessions = new Set<any>()
  s.on('session', (x) => { sessions.add(x) })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const x of sessions) x.destroy(); await new Promise((resolve) => s.close(resolve)) })
  const fx = await routed(t, { ports: [(s.address() as { port: number }).port], timeoutMs: 300 }, 'http2')
  const c = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { c.close() })
  const t0 = Date.now()
  const status = await new Promise<unknown>((resolve) => {
    const st = c.request({ ':path': '/' }, { endStream: true })
    st.on('response', (h) => { resolve(h[':status']) })
    st.resume()
  })
  t.equal(status, 504)
  t.ok(Date.now() - t0 >= 280, 'after the timeout')
  await waitFor(() => codes.length === 1, { timeoutMs: 2000 })
  t.same(codes, [8], 'the backend saw RST_STREAM CANCEL')
  t.match(fx.records[0], { responseCode: 504, responseFlags: 'UT' })
})

const def = protoLoader.loadSync(join(__dirname, '../fixtures/apps/echo.proto'), { keepCase: true, longs: Number, defaults: true })
const { Echo } = (grpc.loadPackageDefinition(def) as any).ferry.fixtures

t.test('gRPC: the request timeout answers DEADLINE_EXCEEDED trailers-only and the handler sees its call cancelled', async (t) => {
  let cancelled = 0
  const srv = new grpc.Server()
  srv.addService(Echo.service, {
    Unary (call: any, cb: any) {
      const timer = setTimeout(() => { cb(null, { message: 'late' }) }, 2000)
      call.on('cancelled', () => { cancelled++; clearTimeout(timer) })
    }
  })
  const port = await new Promise<number>((resolve, reject) => srv.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => { if (err !== null) reject(err); else resolve(p) }))
  t.teardown(() => { srv.forceShutdown() })
  const fx = await routed(t, { ports: [port], timeoutMs: 300 }, 'http2')
  const c = new Echo(`127.0.0.1:${fx.port}`, grpc.credentials.createInsecure())
  t.teardown(() => { c.close() })
  const err = await new Promise<any>((resolve) => { c.Unary({ message: 'hi' }, (e: any) => { resolve(e) }) })
  t.equal(err?.code, grpc.status.DEADLINE_EXCEEDED)
  await waitFor(() => cancelled === 1, { timeoutMs: 2000 })
  await waitFor(() => fx.records.length === 1, { timeoutMs: 2000 })
  t.match(fx.records[0], { protocol: 'grpc', responseCode: 200, grpcStatus: 4, responseFlags: 'UT' })
})

t.test('per-try timeout: the slow attempt is canceled and retried on the next endpoint; with no retry left, 504 UT', async (t) => {
  const seen = { canceled: 0, answered: 0 }
  const slow = await sleeper(t, 2000, seen)
  const fast = await sleeper(t, 0, { canceled: 0, answered: 0 })
  const fx = await routed(t, { ports: [slow, fast], perTryTimeoutMs: 200, retry: { attempts: 1, on: { gatewayError: true } } })
  const r = await send(fx.port)
  t.equal(r.status, 200)
  t.ok(r.ms >= 190, `after the first try's timeout (${r.ms} ms)`)
  t.match(fx.logs[0].outcomes, [{ kind: 'timeout' }, { kind: 'response', status: 200 }])
  await waitFor(() => seen.canceled === 1, { timeoutMs: 2000 })
  t.match(fx.records[0], { responseCode: 200, attempts: 2, upstream: { port: fast } })
  const fx2 = await routed(t, { ports: [slow], perTryTimeoutMs: 200 })
  const r2 = await send(fx2.port)
  t.equal(r2.status, 504)
  t.match(fx2.records[0], { responseFlags: 'UT', attempts: 1 })
})

t.test('the request timeout bounds retries and their backoff too', async (t) => {
  const seen = { canceled: 0, answered: 0 }
  const slow = await sleeper(t, 2000, seen)
  const fx = await routed(t, { ports: [slow], timeoutMs: 500, perTryTimeoutMs: 200, retry: { attempts: 5, on: { gatewayError: true } } })
  const r = await send(fx.port)
  t.equal(r.status, 504)
  t.ok(r.ms < 900, `answered after ${r.ms} ms`)
  t.ok(fx.logs[0].outcomes.length >= 2, 'retried within the request timeout')
  t.ok(fx.logs[0].outcomes.every((o) => o.kind === 'timeout'))
  t.match(fx.records[0], { responseFlags: 'UT' })
})
