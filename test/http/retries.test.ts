import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as h2server } from 'node:http2'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import t from 'tap'
import type { Teardown } from '../helpers/http-harness'
import { routed } from '../helpers/plans'

// Retries as a plan asks (attempts.ts): on connect failure, a reset before the response,
// retriable statuses, trailers-only gRPC statuses; only while the request can be sent
// again (its body held whole, ≤ 64 KiB); the budget (plan.retryDelay) and the count
// ending them with URX; every attempt ended once with its outcome.

type Handler = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void

/** A server whose n-th request (from 1) is answered by `handler`; it records each body. */
async function server (t: Teardown, handler: Handler, bodies: string[] = [], version: 'http1' | 'http2' = 'http1'): Promise<number> {
  let n = 0
  const h = (req: IncomingMessage, res: ServerResponse): void => {
    const i = ++n
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => { bodies.push(body); handler(req, res, i, body) })
  }
  const s = version === 'http2' ? h2server(h as any) : createServer(h)
  const sessions = new Set<any>()
  s.on('session', (x: any) => { sessions.add(x) })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    if ('closeAllConnections' in s) s.closeAllConnections()
    for (const x of sessions) x.destroy()
    await new Promise((resolve) => s.close(resolve))
  })
  return (s.address() as { port: number }).port
}

const failFirst = (k: number, status = 503): Handler => (_req, res, n) => {
  res.statusCode = n <= k ? status : 200
  res.end(n <= k ? 'failing' : `ok after ${n - 1}`)
}

function send (port: number, opts: { method?: string, body?: string | Buffer, path?: string } = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', agent: new Agent() }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

t.test('retriable statuses are retried (backoff, budget asked each time) until one succeeds', async (t) => {
  const a = await server(t, failFirst(2))
  const fx = await routed(t, { ports: [a], retry: { attempts: 3, on: { gatewayError: true } } })
  const r = await send(fx.port)
  t.same([r.status, r.body], [200, 'ok after 2'])
  t.match(fx.logs[0].outcomes, [{ kind: 'response', status: 503 }, { kind: 'response', status: 503 }, { kind: 'response', status: 200 }])
  t.equal(fx.logs[0].budgetAsked, 2)
  t.match(fx.records[0], { responseCode: 200, responseFlags: '-', attempts: 3 })
})

t.test('a status the policy does not name is passed on, not retried', async (t) => {
  const a = await server(t, failFirst(5, 404))
  const fx = await routed(t, { ports: [a], retry: { attempts: 3, on: { gatewayError: true, statuses: [500] } } })
  const r = await send(fx.port)
  t.equal(r.status, 404)
  t.equal(fx.logs[0].outcomes.length, 1)
  t.equal(fx.records[0].attempts, 1)
})

t.test('a connect failure is retried on another endpoint (connect-failure)', async (t) => {
  const closed = await server(t, failFirst(0))
  const a = await server(t, failFirst(0))
  // A port nothing listens on any more.
  const dead = await new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => { resolve(p) }) }) })
  t.ok(closed > 0)
  const fx = await routed(t, { ports: [dead, a], retry: { attempts: 1, on: { connectFailure: true } } })
  const r = await send(fx.port)
  t.equal(r.status, 200)
  t.same(fx.logs[0].ports, [dead, a])
  t.match(fx.logs[0].outcomes, [{ kind: 'connect_failure' }, { kind: 'response', status: 200 }])
  t.match(fx.records[0], { responseFlags: '-', attempts: 2, upstream: { port: a } })
  // Without a retry policy the same failure is the answer: 503 UF.
  const fx2 = await routed(t, { ports: [dead] })
  const r2 = await send(fx2.port)
  t.equal(r2.status, 503)
  t.match(fx2.records[0], { responseFlags: 'UF', attempts: 1 })
})

t.test('a reset before the response is retried (reset)', async (t) => {
  const a = await server(t, (req, res, n) => { if (n === 1) req.socket.destroy(); else res.end('second') })
  const fx = await routed(t, { ports: [a], retry: { attempts: 2, on: { reset: true } } })
  const r = await send(fx.port)
  t.same([r.status, r.body], [200, 'second'])
  t.match(fx.logs[0].outcomes, [{ kind: 'reset' }, { kind: 'response', status: 200 }])
})

t.test('a POST whose body is held (≤ 64 KiB) is retried with its whole body; a larger one is not retried', async (t) => {
  const bodies: string[] = []
  let fail = true
  const a = await server(t, (_req, res) => {
    res.statusCode = fail ? 503 : 200
    fail = !fail
    res.end(`got ${bodies[bodies.length - 1].length}`)
  }, bodies)
  const fx = await routed(t, { ports: [a], retry: { attempts: 2, on: { gatewayError: true } } })
  const small = 'a'.repeat(60 * 1024)
  const r = await send(fx.port, { method: 'POST', body: small })
  t.same([r.status, r.body], [200, `got ${small.length}`])
  t.same(bodies.map((b) => b.length), [small.length, small.length], 'both attempts carried the whole body')
  t.equal(fx.records[0].requestBytes, small.length, 'the body counted once')
  const big = 'b'.repeat(100 * 1024)
  fail = true
  const r2 = await send(fx.port, { method: 'POST', body: big })
  t.equal(r2.status, 503, 'the first failure is the answer')
  t.equal(bodies.length, 3)
  t.equal(bodies[2].length, big.length)
  t.equal(fx.logs[1].outcomes.length, 1, 'one attempt')
  t.equal(fx.logs[1].budgetAsked, 0, 'no retry asked of the budget')
  t.match(fx.records[1], { responseCode: 503, responseFlags: '-', attempts: 1 })
})

t.test('budget exhausted: the failure is the answer, flagged URX; the retry count exhausted: URX too', async (t) => {
  const a = await server(t, failFirst(100))
  const fx = await routed(t, { ports: [a], budget: 0, retry: { attempts: 3, on: { serverError: true } } })
  const r = await send(fx.port)
  t.equal(r.status, 503)
  t.match(fx.records[0], { responseCode: 503, responseFlags: 'URX', attempts: 1 })
  t.equal(fx.logs[0].budgetAsked, 1)
  const fx2 = await routed(t, { ports: [a], retry: { attempts: 2, on: { serverError: true } } })
  const r2 = await send(fx2.port)
  t.equal(r2.status, 503)
  t.match(fx2.records[0], { responseCode: 503, responseFlags: 'URX', attempts: 3 })
  t.equal(fx2.logs[0].outcomes.length, 3, 'every attempt ended once')
  // A connect failure given up for the budget: both flags, as Envoy lists them.
  const dead = await new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => { resolve(p) }) }) })
  const fx3 = await routed(t, { ports: [dead], budget: 0, retry: { attempts: 2, on: { connectFailure: true } } })
  const r3 = await send(fx3.port)
  t.equal(r3.status, 503)
  t.equal(fx3.records[0].responseFlags, 'UF,URX')
})

t.test('HTTP/2: listed statuses are retried', async (t) => {
  const a = await server(t, failFirst(1, 500), [], 'http2')
  const fx = await routed(t, { ports: [a], retry: { attempts: 1, on: { statuses: [500] } } }, 'http2')
  const { connect } = await import('node:http2')
  const s = connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { s.close() })
  const got = await new Promise<{ status: unknown, body: string }>((resolve) => {
    const st = s.request({ ':path': '/' }, { endStream: true })
    let status: unknown = 0
    let body = ''
    st.setEncoding('utf8')
    st.on('response', (h) => { status = h[':status'] })
    st.on('data', (c: string) => { body += c })
    st.on('end', () => { resolve({ status, body }) })
  })
  t.same(got, { status: 200, body: 'ok after 1' })
  t.match(fx.records[0], { attempts: 2, responseFlags: '-' })
})

const def = protoLoader.loadSync(join(__dirname, '../fixtures/apps/echo.proto'), { keepCase: true, longs: Number, defaults: true })
const { Echo } = (grpc.loadPackageDefinition(def) as any).ferry.fixtures

t.test('gRPC: a trailers-only UNAVAILABLE is retried (grpcStatuses), the OK answer passed on', async (t) => {
  let calls = 0
  const srv = new grpc.Server()
  srv.addService(Echo.service, {
    Unary (call: any, cb: any) {
      calls++
      if (calls === 1) { cb({ code: grpc.status.UNAVAILABLE, details: 'not yet' }); return }
      cb(null, { message: call.request.message, seq: calls, server: 'g' })
    }
  })
  const port = await new Promise<number>((resolve, reject) => srv.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => { if (err !== null) reject(err); else resolve(p) }))
  t.teardown(() => { srv.forceShutdown() })
  const fx = await routed(t, { ports: [port], retry: { attempts: 2, on: { grpcStatuses: [14] } } }, 'http2')
  const c = new Echo(`127.0.0.1:${fx.port}`, grpc.credentials.createInsecure())
  t.teardown(() => { c.close() })
  const reply = await new Promise<any>((resolve, reject) => { c.Unary({ message: 'hi' }, (err: any, r: any) => { if (err !== null) reject(err); else resolve(r) }) })
  t.match(reply, { message: 'hi', seq: 2 })
  t.match(fx.logs[0].outcomes, [{ kind: 'response', status: 200, grpcStatus: 14 }, { kind: 'response', status: 200, grpcStatus: 0 }])
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(fx.records[0], { protocol: 'grpc', grpcStatus: 0, attempts: 2, responseFlags: '-' })
})

t.test('once the response has begun downstream, a reset is not retried: the response is cut (UC)', async (t) => {
  const a = await server(t, (req, res) => {
    res.writeHead(200, { 'content-length': '100' })
    res.write('partial')
    setTimeout(() => { req.socket.destroy() }, 50)
  })
  const fx = await routed(t, { ports: [a], retry: { attempts: 3, on: { reset: true, serverError: true } } })
  const cut = await new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port: fx.port, path: '/', agent: new Agent() }, (res) => {
      res.on('data', () => {})
      res.on('error', () => { resolve('cut') })
      res.on('aborted', () => { resolve('cut') })
      res.on('end', () => { resolve('ended') })
    })
    req.on('error', () => { resolve('cut') })
    req.end()
  })
  t.equal(cut, 'cut')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(fx.logs[0].outcomes, [{ kind: 'reset' }])
  t.equal(fx.logs[0].budgetAsked, 0)
  t.match(fx.records[0], { responseCode: 200, responseFlags: 'UC', attempts: 1 })
})

t.test('a body still arriving when the first attempt fails is sent whole to the retry', async (t) => {
  const bodies: string[] = []
  const a = await server(t, (_req, res, n) => { res.end(`n=${n}`) }, bodies)
  // The first attempt fails as soon as its headers arrive, before the client is done.
  const early = createServer((req, res) => { res.statusCode = 503; res.end('early'); req.resume() })
  await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { early.closeAllConnections(); await new Promise((resolve) => early.close(resolve)) })
  const fx = await routed(t, { ports: [(early.address() as { port: number }).port, a], retry: { attempts: 1, on: { gatewayError: true } } })
  const got = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: fx.port, path: '/', method: 'PUT', agent: new Agent(), headers: { 'content-length': '3000' } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += String(c) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.write('1'.repeat(1000))
    setTimeout(() => { req.write('2'.repeat(1000)) }, 100)
    setTimeout(() => { req.end('3'.repeat(1000)) }, 200)
  })
  t.same(got, { status: 200, body: 'n=1' })
  t.equal(bodies.length, 1)
  t.equal(bodies[0], '1'.repeat(1000) + '2'.repeat(1000) + '3'.repeat(1000), 'the retry got the whole body, in order')
  t.match(fx.records[0], { attempts: 2, requestBytes: 3000 })
})
