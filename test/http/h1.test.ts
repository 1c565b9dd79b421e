import { Agent, createServer, get, request, type IncomingMessage, type Server } from 'node:http'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { dialLoopback, startEngine, type Teardown } from '../helpers/http-harness'

const run = promisify(execFile)

async function upstream (t: Teardown, name: string, handler?: (req: IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<number> {
  const server: Server = createServer(handler ?? ((req, res) => {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => {
      res.setHeader('x-served-by', name)
      res.end(JSON.stringify({ name, method: req.method, url: req.url, bytes: n, headers: req.headers }))
    })
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return (server.address() as { port: number }).port
}

function fetchJson (port: number, path: string, agent: Agent, opts: { method?: string, body?: string, headers?: Record<string, string> } = {}): Promise<{ status: number, headers: IncomingMessage['headers'], body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        let body: any = text
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

t.test('keep-alive requests on one client connection are balanced per request, and each is recorded', async (t) => {
  const a = await upstream(t, 'a')
  const b = await upstream(t, 'b')
  const fx = await startEngine(t, { version: 'http1', endpoints: [a, b] })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const names: string[] = []
  for (let i = 0; i < 4; i++) {
    const r = await fetchJson(fx.port, `/p${i}?q=1`, agent, { headers: { connection: 'keep-alive, x-hop', 'x-hop': 'no', 'x-e2e': 'yes' } })
    t.equal(r.status, 200)
    names.push(r.body.name)
    t.equal(r.body.url, `/p${i}?q=1`)
    t.equal(r.body.headers['x-e2e'], 'yes', 'end-to-end headers pass')
    t.equal(r.body.headers['x-hop'], undefined, 'headers named by Connection do not')
    t.match(r.body.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'x-request-id added')
    t.equal(r.body.headers.host, `127.0.0.1:${fx.port}`, 'Host kept')
  }
  t.same(names, ['a', 'b', 'a', 'b'])
  t.equal(fx.records.length, 4)
  const r0 = fx.records[0]
  t.match(r0, { reporter: 'source', protocol: 'http', httpVersion: '1.1', method: 'GET', path: '/p0?q=1', responseCode: 200, responseFlags: '-', upstream: { port: a } })
  t.ok(r0.responseBytes > 0)
  t.ok(r0.requestId !== null)
})

t.test('a client-sent x-request-id is kept', async (t) => {
  const a = await upstream(t, 'a')
  const fx = await startEngine(t, { version: 'http1', endpoints: [a] })
  const r = await fetchJson(fx.port, '/', new Agent(), { headers: { 'x-request-id': 'given-1' } })
  t.equal(r.body.headers['x-request-id'], 'given-1')
  t.equal(fx.records[0].requestId, 'given-1')
})

t.test('POST bodies, chunked both ways, and trailers', async (t) => {
  const a = await upstream(t, 'a', (req, res) => {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => {
      res.writeHead(200, { trailer: 'x-count' })
      res.write('counted ')
      res.addTrailers({ 'x-count': String(n) })
      res.end(String(n))
    })
  })
  const fx = await startEngine(t, { version: 'http1', endpoints: [a] })
  const { stdout } = await run('curl', ['-sS', '--raw', '-H', 'transfer-encoding: chunked', '--data-binary', 'x'.repeat(1000), `http://127.0.0.1:${fx.port}/up`])
  t.match(stdout, /counted /)
  t.match(stdout, /x-count: 1000/i, 'the trailer arrives')
})

t.test('Expect: 100-continue is passed on', async (t) => {
  let sawExpect = false
  const srv = createServer()
  srv.on('checkContinue', (req, res) => {
    sawExpect = true
    res.writeContinue()
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { res.end(`got ${n}`) })
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  const fx = await startEngine(t, { version: 'http1', endpoints: [(srv.address() as { port: number }).port] })
  const { stdout, stderr } = await run('curl', ['-sS', '-v', '-H', 'expect: 100-continue', '--data-binary', 'x'.repeat(2000), `http://127.0.0.1:${fx.port}/e`])
  t.equal(stdout, 'got 2000')
  t.match(stderr, /HTTP\/1.1 100 Continue/)
  t.ok(sawExpect, 'the endpoint saw the Expect')
})

t.test('no endpoint: 503 UH; connect failure: 503 UF; upstream reset before response: 503 UC', async (t) => {
  const fx = await startEngine(t, { version: 'http1', endpoints: [] })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const r1 = await fetchJson(fx.port, '/', agent)
  t.equal(r1.status, 503)
  t.equal(r1.body, 'no healthy upstream')
  t.equal(fx.records[0].responseFlags, 'UH')
  // A closed port.
  const closed = await upstream(t, 'gone')
  fx.endpoints = [1]
  const r2 = await fetchJson(fx.port, '/', agent)
  t.equal(r2.status, 503)
  t.equal(fx.records[1].responseFlags, 'UF')
  const resetting = await upstream(t, 'rst', (req) => { req.socket.resetAndDestroy() })
  fx.endpoints = [resetting]
  const r3 = await fetchJson(fx.port, '/', agent)
  t.equal(r3.status, 503)
  t.equal(fx.records[2].responseFlags, 'UC')
  fx.endpoints = [closed]
  const r4 = await fetchJson(fx.port, '/', agent)
  t.equal(r4.status, 200, 'the same client connection still serves')
})

t.test('the destination authorizes each request: denied is 403 and the connection stays usable', async (t) => {
  const a = await upstream(t, 'a')
  const fx = await startEngine(t, {
    version: 'http1',
    endpoints: [a],
    reporter: 'destination',
    normalizePath: (raw) => raw.includes('..') ? { reject: 'dot segments' } : { path: raw.replace(/\/+/g, '/') },
    authorizer: {
      record: { authz: null } as any,
      rateLimit: null,
      authorize (view) {
        (this.record as any).authz = { policy: 'ns/deny-admin' }
        return !view.path.startsWith('/admin') && view.header('x-block') === undefined
      }
    }
  })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const d = await fetchJson(fx.port, '//admin/x', agent)
  t.equal(d.status, 403)
  t.equal(d.body, 'RBAC: access denied')
  const ok = await fetchJson(fx.port, '//public//x?y=1', agent)
  t.equal(ok.status, 200)
  t.equal(ok.body.url, '/public/x?y=1', 'the application receives the normalized path')
  const bad = await fetchJson(fx.port, '/a/../admin', agent)
  t.equal(bad.status, 400)
  t.match(fx.records.map((r) => r.responseFlags), ['RBAC', '-', 'DPE'])
  t.same(fx.records[0].authz, { policy: 'ns/deny-admin' })
  t.equal(fx.records[1].path, '/public/x?y=1')
})

t.test('a 1 GiB download and a 100 MiB chunked upload stream through without buffering', async (t) => {
  const MiB = 1024 * 1024
  const chunk = Buffer.alloc(MiB, 7)
  const a = await upstream(t, 'big', (req, res) => {
    if (req.method === 'GET') {
      let left = 1024
      const push = (): void => {
        while (left > 0) {
          left--
          if (!res.write(chunk)) { res.once('drain', push); return }
        }
        res.end()
      }
      push()
      return
    }
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { res.end(String(n)) })
  })
  const fx = await startEngine(t, { version: 'http1', endpoints: [a] })
  const before = process.memoryUsage().rss
  let peak = before
  const got = await new Promise<number>((resolve, reject) => {
    get({ host: '127.0.0.1', port: fx.port, path: '/big' }, (res) => {
      let n = 0
      res.on('data', (c: Buffer) => { n += c.length; if ((n & (64 * MiB - 1)) < c.length) peak = Math.max(peak, process.memoryUsage().rss) })
      res.on('end', () => { resolve(n) })
    }).on('error', reject)
  })
  t.equal(got, 1024 * MiB)
  t.ok(peak - before < 256 * MiB, `rss grew ${Math.round((peak - before) / MiB)} MiB`)
  const sent = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: fx.port, path: '/up', method: 'POST' }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += String(c) })
      res.on('end', () => { resolve(text) })
    })
    req.on('error', reject)
    let left = 100
    const push = (): void => {
      while (left > 0) {
        left--
        if (!req.write(chunk)) { req.once('drain', push); return }
      }
      req.end()
    }
    push()
  })
  t.equal(sent, String(100 * MiB))
  t.equal(fx.records[1].requestBytes, 100 * MiB)
})

t.test('a pooled upstream connection reused for many requests keeps a constant number of listeners', async (t) => {
  const a = await upstream(t, 'a')
  const dialed: import('node:net').Socket[] = []
  const fx = await startEngine(t, {
    version: 'http1',
    endpoints: [a],
    dial: async (port) => {
      const s = await dialLoopback(port)
      dialed.push(s as import('node:net').Socket)
      return s
    }
  })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  await fetchJson(fx.port, '/', agent)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const after1 = dialed[0].listenerCount('error')
  for (let i = 0; i < 30; i++) await fetchJson(fx.port, '/', agent)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(dialed.length, 1, 'one upstream connection, reused')
  t.equal(dialed[0].listenerCount('error'), after1, 'no listener added per request')
})
