import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as h2connect, createServer as h2server, type ServerHttp2Session } from 'node:http2'
import type { Socket } from 'node:net'
import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'
import type { ConnectionPolicy, ConnectionPoolLimits } from '../../src/routing/model'
import type { Teardown } from '../helpers/http-harness'
import { unansweredPort } from '../helpers/net'
import { routed } from '../helpers/plans'
import { waitFor } from '../helpers/wait'

// A backend's connection-pool limits carried out by the engine's upstream pools
// (src/http/upstream-pool.ts), against real servers on loopback, counted server-side:
// tcp.maxConnections bounds the connections (requests beyond wait for one),
// http.maxRequestsPerConnection retires a connection (HTTP/1.1) or session (HTTP/2),
// tcp.connectTimeout fails a connect that hangs (UF, retried as a connect failure),
// idleTimeout closes an idle pooled connection. The node-wide count returns to 0.

const NONE: ConnectionPoolLimits = { maxConnections: null, maxPendingRequests: null, maxRequests: null, maxRequestsPerConnection: null, connectTimeoutMs: null, idleTimeoutMs: null }

function policy (limits: Partial<ConnectionPoolLimits>): ConnectionPolicy & { gate: NonNullable<ConnectionPolicy['gate']> } {
  const l = { ...NONE, ...limits }
  const gate = new NodeLimits(NodeLimits.allocate({ backends: 16, endpoints: 16, pods: 16 }), () => Date.now()).poolFor('test/svc:80', l)
  return { key: 'test/svc:80', limits: l, gate }
}

/** An HTTP/1.1 server answering after `ms`; its connections counted (open now, most at once, requests each). */
async function h1Server (t: Teardown, ms: number): Promise<{ port: number, opened: number, open: number, most: number, perConnection: number[] }> {
  const seen = { port: 0, opened: 0, open: 0, most: 0, perConnection: [] as number[] }
  const index = new WeakMap<Socket, number>()
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const i = index.get(req.socket)
    if (i !== undefined) seen.perConnection[i]++
    req.resume()
    setTimeout(() => { res.end('ok') }, ms)
  })
  srv.keepAliveTimeout = 60_000
  srv.on('connection', (s: Socket) => {
    index.set(s, seen.perConnection.length)
    seen.perConnection.push(0)
    seen.opened++
    seen.open++
    seen.most = Math.max(seen.most, seen.open)
    s.on('close', () => { seen.open-- })
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { srv.closeAllConnections(); await new Promise((resolve) => srv.close(resolve)) })
  seen.port = (srv.address() as { port: number }).port
  return seen
}

function get (port: number): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: new Agent() }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('HTTP/1.1: maxConnections 2 — 8 requests at once are all served over at most 2 connections, the rest waiting for one', async (t) => {
  const srv = await h1Server(t, 150)
  const p = policy({ maxConnections: 2, idleTimeoutMs: 300 })
  const fx = await routed(t, { ports: [srv.port], connections: p })
  let mostCounted = 0
  const sampler = setInterval(() => { mostCounted = Math.max(mostCounted, p.gate.counts().connections) }, 5)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await get(fx.port)))
  clearInterval(sampler)
  t.same(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200, 200, 200])
  t.equal(srv.most, 2, 'the backend never held more than 2 connections from the pool')
  t.equal(srv.opened, 2, 'the waiting requests reused the 2 connections')
  t.same(srv.perConnection.reduce((a, b) => a + b, 0), 8)
  t.ok(mostCounted <= 2, `counted node-wide: at most 2 (${mostCounted})`)
  await waitFor(() => srv.open === 0 && p.gate.counts().connections === 0, { timeoutMs: 5000, what: 'idle connections closed and released' })
  t.same(p.gate.counts(), { requests: 0, connections: 0 }, 'each connection released once')
})

t.test('HTTP/1.1: maxRequestsPerConnection 2 — a connection serves at most 2 requests', async (t) => {
  const srv = await h1Server(t, 0)
  const p = policy({ maxRequestsPerConnection: 2 })
  const fx = await routed(t, { ports: [srv.port], connections: p })
  for (let i = 0; i < 5; i++) t.equal((await get(fx.port)).status, 200)
  t.same(srv.perConnection, [2, 2, 1], 'requests per server-side connection')
  await waitFor(() => srv.open === 1, { timeoutMs: 5000, what: 'retired connections closed' })
  t.equal(p.gate.counts().connections, 1, 'only the open one is counted')
})

t.test('HTTP/2: maxRequestsPerConnection 2 — a session takes at most 2 streams, then goes away and a new one opens', async (t) => {
  const streams: number[] = []
  let open = 0
  const srv = h2server()
  srv.on('session', (s: ServerHttp2Session) => {
    const i = streams.length
    streams.push(0)
    open++
    s.on('stream', (stream) => { streams[i]++; stream.respond({ ':status': 200 }); stream.end('ok') })
    s.on('close', () => { open-- })
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => srv.close(resolve)) })
  const p = policy({ maxRequestsPerConnection: 2 })
  const fx = await routed(t, { ports: [(srv.address() as { port: number }).port], connections: p }, 'http2')
  const client = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { client.close() })
  for (let i = 0; i < 5; i++) {
    const status = await new Promise<number>((resolve, reject) => {
      const r = client.request({ ':path': '/' })
      let code = 0
      r.on('response', (h) => { code = Number(h[':status']) })
      r.on('error', reject)
      r.resume()
      r.on('end', () => { resolve(code) })
    })
    t.equal(status, 200)
  }
  t.same(streams, [2, 2, 1], 'streams per server-side session')
  await waitFor(() => open === 1, { timeoutMs: 5000, what: 'retired sessions closed' })
  t.equal(p.gate.counts().connections, 1)
})

t.test('connectTimeout 300 ms: a connect that never completes fails as a connect failure (UF) and is retried elsewhere', async (t) => {
  const hole = await unansweredPort()
  t.teardown(() => { hole.close() })
  const srv = await h1Server(t, 0)
  const p = policy({ connectTimeoutMs: 300 })
  const fx = await routed(t, { ports: [hole.port, srv.port], connections: p, timeoutMs: 5000, retry: { attempts: 1, on: { connectFailure: true } } })
  const r = await get(fx.port)
  t.equal(r.status, 200, 'the retry was served (without the connect timeout: 504 after the 5 s request timeout)')
  t.same(fx.logs[0].ports, [hole.port, srv.port])
  t.match(fx.logs[0].outcomes, [{ kind: 'connect_failure' }, { kind: 'response', status: 200 }])
  const fx2 = await routed(t, { ports: [hole.port], connections: p, timeoutMs: 5000 })
  const r2 = await get(fx2.port)
  t.equal(r2.status, 503)
  t.match(fx2.records[0], { responseCode: 503, responseFlags: 'UF' })
  t.equal(p.gate.counts().connections, 1, 'the timed-out connects hold no slot (the served connection does)')
})

t.test('maxConnections 1 and a connect that times out: the request waiting for that connection fails with it (UF), it does not hang', async (t) => {
  const hole = await unansweredPort()
  t.teardown(() => { hole.close() })
  const p = policy({ maxConnections: 1, connectTimeoutMs: 300 })
  const fx = await routed(t, { ports: [hole.port], connections: p, timeoutMs: 5000 })
  const answers = await Promise.all([get(fx.port), get(fx.port)])
  t.same(answers.map((a) => a.status), [503, 503], 'both 503 (without: the second 504 after the 5 s request timeout)')
  t.same(fx.records.map((r) => r.responseFlags), ['UF', 'UF'])
  t.equal(p.gate.counts().connections, 0)
})

t.test('idleTimeout 200 ms: an idle pooled connection is closed (the engine default is 60 s)', async (t) => {
  const srv = await h1Server(t, 0)
  const p = policy({ idleTimeoutMs: 200, maxConnections: 4 })
  const fx = await routed(t, { ports: [srv.port], connections: p })
  t.equal((await get(fx.port)).status, 200)
  t.equal(srv.opened, 1)
  await waitFor(() => srv.open === 0, { timeoutMs: 5000, what: 'the idle connection closed by the pool' })
  t.equal(p.gate.counts().connections, 0, 'released when it closed')
})
