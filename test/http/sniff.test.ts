import { connect, createServer, type Socket } from 'node:net'
import { Agent, createServer as httpServer, request } from 'node:http'
import { connect as h2connect, createServer as h2server } from 'node:http2'
import t from 'tap'
import { Conn } from '../../src/proxy/conn'
import { relay } from '../../src/proxy/relay'
import { classify, passClientEnd, sniff, type SniffResult } from '../../src/http/sniff'
import { HttpEngine } from '../../src/http/engine'
import type { UpstreamTarget } from '../../src/http/context'
import { dialLoopback, type Teardown } from '../helpers/http-harness'

t.test('classify: request lines, the HTTP/2 preface, prefixes of them, and the rest', async (t) => {
  const c = (s: string): unknown => { const r = classify(Buffer.from(s, 'latin1'), 1024); return r === 'more' ? r : r.kind === 'http' ? r.version : r.reason }
  t.equal(c('GET / HTTP/1.1\r\n'), 'http1')
  t.equal(c('POST /a?b HTTP/1.0\n'), 'http1')
  t.equal(c('GE'), 'more')
  t.equal(c('GET /x HTT'), 'more')
  t.equal(c('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http2')
  t.equal(c('PRI * HTTP/2.0\r\n'), 'more')
  t.equal(c('\x16\x03\x01'), 'not_http', 'a TLS ClientHello')
  t.equal(c('*1\r\n$4\r\nPING\r\n'), 'not_http', 'redis')
  t.equal(c('GET / SPDY/3\r\n'), 'not_http')
  t.equal(c('A'.repeat(2000)), 'not_http', 'no line end within the limit')
})

interface Detecting { port: number, outcomes: string[], records: number }

/** A detect port: connect upstream at once, then L4 relay or the engine, as the proxy does. */
async function detectProxy (t: Teardown, endpoints: number[]): Promise<Detecting> {
  const recs: unknown[] = []
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { recs.push(r) } } })
  const out: Detecting = { port: 0, outcomes: [], get records () { return recs.length } } as any
  let next = 0
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (down: Socket) => {
    down.on('error', () => {})
    const record = new Conn('outbound', down, Date.now)
    const targets = endpoints.map((port): UpstreamTarget => ({ key: `d|${port}`, address: { address: '127.0.0.1', port, family: 4 }, record, local: null, dial: async () => await dialLoopback(port) }))
    const first = targets[next++ % targets.length]
    void first.dial().then((up) => {
      sniff(down, up, 8192, (r) => {
        out.outcomes.push(r.kind === 'http' ? r.version : r.reason)
        if (r.kind === 'l4') { relay(down, up, () => {}); return }
        engine.serve(r.end ?? down, r.version, { reporter: 'source', record, authorizer: null, normalizePath: null, route: null, rateLimit: null, pick: () => targets[next++ % targets.length] }, { target: first, end: r.up ?? up })
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  out.port = (server.address() as { port: number }).port
  t.teardown(async () => { engine.close(); server.close() })
  return out
}

t.test('a server-first protocol: the greeting flows at once and the connection stays L4', async (t) => {
  const greeter = createServer((s) => { s.write('220 hello\r\n'); s.on('data', (d) => { s.write(`echo ${String(d)}`) }) })
  await new Promise<void>((resolve) => greeter.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { greeter.close() })
  const d = await detectProxy(t, [(greeter.address() as { port: number }).port])
  const s = connect(d.port, '127.0.0.1')
  t.teardown(() => { s.destroy() })
  const started = Date.now()
  const greeting = await new Promise<string>((resolve) => s.once('data', (b) => { resolve(String(b)) }))
  t.equal(greeting, '220 hello\r\n')
  t.ok(Date.now() - started < 500, 'no detection delay')
  s.write('GET / HTTP/1.1\r\n\r\n')
  const echoed = await new Promise<string>((resolve) => s.once('data', (b) => { resolve(String(b)) }))
  t.equal(echoed, 'echo GET / HTTP/1.1\r\n\r\n', 'relayed byte for byte after the greeting')
  t.same(d.outcomes, ['server_first'])
})

t.test('a client speaking something else: L4, bytes exact', async (t) => {
  const echo = createServer((s) => { s.pipe(s) })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { echo.close() })
  const d = await detectProxy(t, [(echo.address() as { port: number }).port])
  const s = connect(d.port, '127.0.0.1')
  t.teardown(() => { s.destroy() })
  s.write('*1\r\n$4\r\nPING\r\n')
  const got = await new Promise<string>((resolve) => s.once('data', (b) => { resolve(String(b)) }))
  t.equal(got, '*1\r\n$4\r\nPING\r\n')
  t.same(d.outcomes, ['not_http'])
})

t.test('HTTP/1.1 detected: the first request uses the connection already made, later ones are balanced', async (t) => {
  const ports: number[] = []
  for (const name of ['a', 'b']) {
    const srv = httpServer((req, res) => { res.end(`${name} ${req.socket.remotePort}`) })
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    t.teardown(() => { srv.closeAllConnections(); srv.close() })
    ports.push((srv.address() as { port: number }).port)
  }
  const d = await detectProxy(t, ports)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const names: string[] = []
  for (let i = 0; i < 3; i++) {
    names.push(await new Promise<string>((resolve, reject) => {
      request({ port: d.port, host: '127.0.0.1', agent }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b.split(' ')[0]) }) }).on('error', reject).end()
    }))
  }
  t.same(names, ['a', 'b', 'a'])
  t.same(d.outcomes, ['http1'])
})

t.test('HTTP/2 detected from the preface', async (t) => {
  const srv = h2server()
  srv.on('stream', (s) => { s.respond({ ':status': 200 }); s.end('h2 ok') })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  const d = await detectProxy(t, [(srv.address() as { port: number }).port])
  const session = h2connect(`http://127.0.0.1:${d.port}`)
  t.teardown(() => { session.close() })
  const body = await new Promise<string>((resolve, reject) => {
    const s = session.request({ ':path': '/' })
    let b = ''
    s.on('data', (c) => { b += String(c) })
    s.on('end', () => { resolve(b) })
    s.on('error', reject)
  })
  t.equal(body, 'h2 ok')
  t.same(d.outcomes, ['http2'])
})

t.test('a client that ends before the verdict: nothing reaches upstream until the caller passes its bytes and end on', async (t) => {
  const received: string[] = []
  let upEnded = false
  const app = createServer({ allowHalfOpen: true }, (s) => { s.on('data', (d) => { received.push(String(d)) }); s.on('end', () => { upEnded = true; s.end() }) })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { app.close() })
  const verdict = new Promise<{ r: SniffResult, up: Socket }>((resolve) => {
    const front = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (down: Socket) => {
      down.on('error', () => {})
      void dialLoopback((app.address() as { port: number }).port).then((up) => { sniff(down, up, 8192, (r) => { resolve({ r, up: up as Socket }) }) })
    })
    front.listen(0, '127.0.0.1', () => {
      t.teardown(() => { front.close() })
      const c = connect({ port: (front.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true })
      c.on('error', () => {})
      t.teardown(() => { c.destroy() })
      c.end('hello')
    })
  })
  const { r, up } = await verdict
  t.match(r, { kind: 'l4', reason: 'not_http' })
  t.equal(String((r as { ended?: Buffer }).ended), 'hello', 'the bytes, handed to the caller')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(received, [], 'nothing written upstream before the caller decides (it may refuse the connection)')
  t.notOk(upEnded)
  passClientEnd(r, up)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(received, ['hello'], 'passed on')
  t.ok(upEnded, 'with the end')
  up.destroy()
})
