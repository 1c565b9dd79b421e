import { Agent, createServer, request, type IncomingMessage } from 'node:http'
import { connect as h2connect } from 'node:http2'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import t from 'tap'
import type { RequestAuthorizer } from '../../src/http/context'
import type { RateLimitVerdict, RequestRateLimit } from '../../src/limits/types'
import { Conn } from '../../src/proxy/conn'
import { startEngine, type Teardown } from '../helpers/http-harness'
import { testPlan } from '../helpers/plans'

// Local rate limits in the engine (rate-limit.ts): at the destination
// (HttpDownstream.rateLimit) and on the same-node path (the target's
// RequestAuthorizer.rateLimit, after its authorization). An empty bucket: 429 with
// x-ratelimit-limit / -remaining / -reset (flag RL), gRPC RESOURCE_EXHAUSTED; an allowed
// request's response carries the same headers.

/** A bucket of `size` tokens that never refills (the interface's contract, no clock). */
function bucket (size: number): RequestRateLimit & { taken: number } {
  let left = size
  return {
    taken: 0,
    take (_now: number): RateLimitVerdict {
      this.taken++
      const allowed = left > 0
      if (allowed) left--
      return { allowed, limit: size, remaining: left, resetSeconds: 7.2, policy: 'RateLimit test/limit' }
    }
  }
}

async function upstream (t: Teardown): Promise<number> {
  const s = createServer((_req, res) => { res.end('ok') })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as { port: number }).port
}

function send (port: number): Promise<{ status: number, headers: IncomingMessage['headers'], body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: new Agent() }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.on('error', reject)
    req.end()
  })
}

const limitHeaders = (h: IncomingMessage['headers']): unknown[] => [h['x-ratelimit-limit'], h['x-ratelimit-remaining'], h['x-ratelimit-reset']]

function sendH2 (t: Teardown, port: number): Promise<{ status: number, headers: IncomingMessage['headers'], body: string }> {
  const s = h2connect(`http://127.0.0.1:${port}`)
  t.teardown(() => { s.close() })
  return new Promise((resolve, reject) => {
    const st = s.request({ ':path': '/' }, { endStream: true })
    let headers: any = {}
    let body = ''
    st.setEncoding('utf8')
    st.on('response', (h) => { headers = h })
    st.on('data', (c: string) => { body += c })
    st.on('end', () => { resolve({ status: Number(headers[':status']), headers, body }) })
    st.on('error', reject)
  })
}

for (const client of ['http1', 'http2'] as const) {
  t.test(`destination (${client} client, HTTP/1.1 port): 429 RL when the bucket is empty, x-ratelimit-* headers on every answer`, async (t) => {
    const a = await upstream(t)
    const limit = bucket(2)
    const fx = await startEngine(t, { version: 'http1', declared: true, endpoints: [a], reporter: 'destination', rateLimit: limit })
    const one = async (): Promise<{ status: number, headers: IncomingMessage['headers'], body: string }> => client === 'http1' ? await send(fx.port) : await sendH2(t, fx.port)
    const r = [await one(), await one(), await one()]
    t.same(r.map((x) => x.status), [200, 200, 429])
    t.same(limitHeaders(r[0].headers), ['2', '1', '8'])
    t.same(limitHeaders(r[1].headers), ['2', '0', '8'])
    t.same(limitHeaders(r[2].headers), ['2', '0', '8'])
    t.equal(r[2].body, 'local_rate_limited')
    t.same(fx.records.map((x) => x.responseFlags), ['-', '-', 'RL'])
    t.equal(fx.records[2].upstream, null, 'a limited request goes nowhere')
  })
}

const def = protoLoader.loadSync(join(__dirname, '../fixtures/apps/echo.proto'), { keepCase: true, longs: Number, defaults: true })
const { Echo } = (grpc.loadPackageDefinition(def) as any).ferry.fixtures

t.test('gRPC: an empty bucket answers RESOURCE_EXHAUSTED trailers-only', async (t) => {
  const srv = new grpc.Server()
  srv.addService(Echo.service, { Unary (call: any, cb: any) { cb(null, { message: call.request.message }) } })
  const port = await new Promise<number>((resolve, reject) => srv.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => { if (err !== null) reject(err); else resolve(p) }))
  t.teardown(() => { srv.forceShutdown() })
  const fx = await startEngine(t, { version: 'http2', endpoints: [port], reporter: 'destination', rateLimit: bucket(1) })
  const c = new Echo(`127.0.0.1:${fx.port}`, grpc.credentials.createInsecure())
  t.teardown(() => { c.close() })
  const call = (): Promise<{ err: any, md: any }> => new Promise((resolve) => {
    let md: any = null
    const x = c.Unary({ message: 'hi' }, (err: any) => { setImmediate(() => { resolve({ err, md }) }) })
    x.on('metadata', (m: any) => { md = m.getMap() })
    x.on('status', (s: any) => { md = { ...md, ...s.metadata.getMap() } })
  })
  const ok = await call()
  const limited = await call()
  t.equal(ok.err, null)
  t.equal(ok.md['x-ratelimit-limit'], '1')
  t.equal(limited.err?.code, grpc.status.RESOURCE_EXHAUSTED)
  t.equal(limited.md['x-ratelimit-remaining'], '0')
  t.match(fx.records.map((r) => [r.grpcStatus, r.responseFlags]), [[0, '-'], [8, 'RL']])
})

t.test('same node with a route: the target\'s rate limit is taken after its authorization', async (t) => {
  const a = await upstream(t)
  const limit = bucket(1)
  let authorized = 0
  let allow = true
  const fx = await startEngine(t, {
    version: 'http1',
    endpoints: [],
    route: (_v, record) => {
      const local: RequestAuthorizer = {
        record: new Conn('inbound', null, () => 0),
        authorize () { authorized++; return allow },
        rateLimit: limit
      }
      return { kind: 'forward', plan: testPlan({ ports: [a], local }, record).plan }
    }
  })
  const r1 = await send(fx.port)
  const r2 = await send(fx.port)
  allow = false
  const r3 = await send(fx.port)
  t.same([r1.status, r2.status, r3.status], [200, 429, 403])
  t.same(limitHeaders(r2.headers), ['1', '0', '8'])
  t.equal(authorized, 3)
  t.equal(limit.taken, 2, 'a denied request takes no token')
  const sources = fx.records.filter((r) => r.reporter === 'source')
  t.same(sources.map((r) => r.responseFlags), ['-', 'RL', 'RBAC'])
})
