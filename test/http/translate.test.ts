import { Agent, createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { connect as h2connect, createServer as h2server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import t from 'tap'
import { FLAG, FRAME, GET_HEADER_BLOCK, h2Frame, h2Hello, rawH2 } from '../helpers/h2-frames'
import { startEngine, type Teardown } from '../helpers/http-harness'
import { waitFor } from '../helpers/wait'

// A declared port's upstream speaks the port's version whatever the client speaks:
// HTTP/1.1 clients on an http2 port go up as HTTP/2 (h2c), HTTP/2 clients on an http
// port go up as HTTP/1.1. Real Node servers behind the engine, real clients in front.

async function listen (t: Teardown, server: Server | Http2Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  return (server.address() as { port: number }).port
}

interface Seen { version: string, headers: IncomingHttpHeaders }

/** An h2c-only upstream: echoes each request chunk back as "echo:<chunk>" as it arrives (no content-length), trailer x-count. */
async function h2Upstream (t: Teardown, seen: Seen[]): Promise<number> {
  const server = h2server()
  server.on('session', (s) => { t.teardown(() => { s.destroy() }) })
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    seen.push({ version: '2.0', headers })
    stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-up': 'h2' }, { waitForTrailers: true })
    let n = 0
    stream.on('data', (c: Buffer) => { n++; stream.write(`echo:${c.toString()};`) })
    stream.on('wantTrailers', () => { stream.sendTrailers({ 'x-count': String(n) }) })
    stream.on('end', () => { stream.end(`done:${headers[':path'] ?? ''}`) })
  })
  return await listen(t, server)
}

/** An HTTP/1.1 upstream doing the same (chunked response, trailer x-count); records completed requests. */
async function h1Upstream (t: Teardown, seen: Seen[], completed: string[]): Promise<number> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ version: req.httpVersion, headers: req.headers })
    res.writeHead(200, { 'content-type': 'text/plain', 'x-up': 'h1', connection: 'keep-alive', 'keep-alive': 'timeout=5', trailer: 'x-count' })
    res.flushHeaders()
    let n = 0
    let body = ''
    req.on('data', (c: Buffer) => { n++; body += c.toString(); res.write(`echo:${c.toString()};`) })
    req.on('end', () => {
      completed.push(`${req.url ?? ''} ${body}`)
      res.addTrailers({ 'x-count': String(n) })
      res.end(`done:${req.url ?? ''}`)
    })
  })
  t.teardown(() => { server.closeAllConnections() })
  return await listen(t, server)
}

/** Sends "ping1", waits for its echo, then "ping2", …: the bodies stream both ways (a proxy that buffered either would hang). */
async function pingPong (write: (s: string) => void, end: () => void, received: () => string): Promise<void> {
  for (let i = 1; i <= 3; i++) {
    write(`ping${i}`)
    await waitFor(() => received().includes(`echo:ping${i};`), { timeoutMs: 5000 })
  }
  end()
}

t.test('an HTTP/1.1 client on a port declared http2 goes up as HTTP/2, bodies streamed both ways', async (t) => {
  const seen: Seen[] = []
  const up = await h2Upstream(t, seen)
  const fx = await startEngine(t, { version: 'http2', declared: true, endpoints: [up] })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })

  let got = ''
  const res = await new Promise<{ status: number, headers: IncomingHttpHeaders, trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    const req = request({ port: fx.port, host: '127.0.0.1', method: 'POST', path: '/stream?q=1', agent, headers: { host: 'svc.example:8080', 'x-app': 'a', 'keep-alive': 'timeout=9', connection: 'keep-alive, x-hop', 'x-hop': 'gone', 'proxy-connection': 'keep-alive' } })
    req.on('error', reject)
    req.on('response', (r) => {
      r.on('data', (c: Buffer) => { got += c.toString() })
      r.on('end', () => { resolve({ status: r.statusCode ?? 0, headers: r.headers, trailers: r.trailers }) })
    })
    req.flushHeaders()
    pingPong((s) => { req.write(s) }, () => { req.end() }, () => got).catch(reject)
  })
  t.equal(res.status, 200)
  t.equal(got, 'echo:ping1;echo:ping2;echo:ping3;done:/stream?q=1')
  t.equal(res.headers['transfer-encoding'], 'chunked', 'no content-length upstream: chunked downstream')
  t.equal(res.headers['x-up'], 'h2')
  t.equal(res.trailers['x-count'], '3', 'trailers passed on')
  const h = seen[0].headers
  t.equal(h[':authority'], 'svc.example:8080', 'Host became :authority')
  t.equal(h[':method'], 'POST')
  t.equal(h[':path'], '/stream?q=1')
  t.equal(h['x-app'], 'a')
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'x-hop', 'host']) t.equal(h[name], undefined, `${name} not forwarded`)

  // A second request on the same client connection (keep-alive), with a Content-Length body.
  const second = await new Promise<string>((resolve, reject) => {
    const req = request({ port: fx.port, host: '127.0.0.1', method: 'PUT', path: '/two', agent, headers: { 'content-length': '5' } }, (r) => {
      let b = ''
      r.on('data', (c: Buffer) => { b += c.toString() })
      r.on('end', () => { resolve(b) })
    })
    req.on('error', reject)
    req.end('hello')
  })
  t.equal(second, 'echo:hello;done:/two')
  t.equal(seen[1].headers['content-length'], '5')
  await waitFor(() => fx.records.length === 2, { timeoutMs: 2000 })
  t.same(fx.records.map((r) => r.responseCode), [200, 200])

  // An HTTP/2 client on the same port is not translated.
  const c = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { c.destroy() })
  const h2body = await new Promise<string>((resolve, reject) => {
    const s = c.request({ ':path': '/native', ':method': 'GET' })
    let b = ''
    s.on('data', (d: Buffer) => { b += d.toString() })
    s.on('end', () => { resolve(b) })
    s.on('error', reject)
  })
  t.equal(h2body, 'done:/native')
})

t.test('an HTTP/2 client on a port declared http goes up as HTTP/1.1, bodies streamed both ways, trailers back', async (t) => {
  const seen: Seen[] = []
  const completed: string[] = []
  const up = await h1Upstream(t, seen, completed)
  const fx = await startEngine(t, { version: 'http1', declared: true, endpoints: [up] })
  const c = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { c.destroy() })

  let got = ''
  const res = await new Promise<{ headers: IncomingHttpHeaders, trailers: IncomingHttpHeaders }>((resolve, reject) => {
    const s = c.request({ ':method': 'POST', ':path': '/stream', ':authority': 'svc.example:8080', 'x-app': 'a', te: 'trailers' })
    let headers: IncomingHttpHeaders = {}
    let trailers: IncomingHttpHeaders = {}
    s.on('response', (h) => { headers = h })
    s.on('trailers', (tr) => { trailers = tr })
    s.on('data', (d: Buffer) => { got += d.toString() })
    s.on('end', () => { resolve({ headers, trailers }) })
    s.on('error', reject)
    pingPong((x) => { s.write(x) }, () => { s.end() }, () => got).catch(reject)
  })
  t.equal(res.headers[':status'], 200)
  t.equal(got, 'echo:ping1;echo:ping2;echo:ping3;done:/stream')
  t.equal(res.headers['x-up'], 'h1')
  for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'trailer']) t.equal(res.headers[name], undefined, `response ${name} dropped`)
  t.equal(res.trailers['x-count'], '3', 'trailers passed on as HTTP/2 trailers')
  const h = seen[0]
  t.equal(h.version, '1.1')
  t.equal(h.headers.host, 'svc.example:8080', ':authority became Host')
  t.equal(h.headers['transfer-encoding'], 'chunked', 'no content-length: chunked upstream')
  t.equal(h.headers.te, undefined)
  t.equal(h.headers['x-app'], 'a')

  // Two more streams reuse the upstream keep-alive connection; a Content-Length body keeps its length.
  const bodies = await Promise.all(['/a', '/b'].map(async (path) => await new Promise<string>((resolve, reject) => {
    const s = c.request({ ':method': 'PUT', ':path': path, 'content-length': '5' })
    let b = ''
    s.on('data', (d: Buffer) => { b += d.toString() })
    s.on('end', () => { resolve(b) })
    s.on('error', reject)
    s.end('hello')
  })))
  t.same(bodies, ['echo:hello;done:/a', 'echo:hello;done:/b'])
  t.equal(seen[1].headers['content-length'], '5')
  t.equal(seen[1].headers['transfer-encoding'], undefined)
  await waitFor(() => fx.records.length === 3, { timeoutMs: 2000 })
  t.same(fx.records.map((r) => r.responseCode), [200, 200, 200])

  // An HTTP/1.1 client on the same port is not translated.
  const h1body = await new Promise<string>((resolve, reject) => {
    const req = request({ port: fx.port, host: '127.0.0.1', path: '/native' }, (r) => {
      let b = ''
      r.on('data', (d: Buffer) => { b += d.toString() })
      r.on('end', () => { resolve(b) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(h1body, 'done:/native')
})

/** HPACK literal header field without indexing, new name (RFC 7541 §6.2.2); short strings only. */
function literal (name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)])
}

/** Resolves with the RST_STREAM error codes received for stream 1 (and whether any HEADERS came back) once the connection settles. */
function framesOf (socket: import('node:net').Socket): { rst: number[], headers: number } {
  const out = { rst: [] as number[], headers: 0 }
  let buf = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3)
      if (buf.length < 9 + len) break
      const type = buf[3]
      if (type === 0x3) out.rst.push(buf.readUInt32BE(9))
      if (type === FRAME.HEADERS) out.headers++
      buf = buf.subarray(9 + len)
    }
  })
  return out
}

t.test('HTTP/2 to HTTP/1.1 refuses what could smuggle: connection-specific headers, a TE other than trailers, a Content-Length the body does not match', async (t) => {
  const seen: Seen[] = []
  const completed: string[] = []
  const up = await h1Upstream(t, seen, completed)
  const fx = await startEngine(t, { version: 'http1', declared: true, endpoints: [up] })
  for (const [name, value] of [['transfer-encoding', 'chunked'], ['connection', 'close'], ['upgrade', 'h2c'], ['te', 'gzip']]) {
    const { socket, closed } = rawH2(fx.port)
    t.teardown(() => { socket.destroy() })
    const frames = framesOf(socket)
    const block = Buffer.concat([GET_HEADER_BLOCK, literal(name, value)])
    socket.write(Buffer.concat([h2Hello(), h2Frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block)]))
    await Promise.race([waitFor(() => frames.rst.length > 0, { timeoutMs: 3000 }), closed])
    t.same(frames.rst, [0x1], `${name}: ${value} → stream reset PROTOCOL_ERROR`)
    t.equal(frames.headers, 0, `${name}: no response`)
    socket.destroy()
  }
  t.equal(seen.length, 0, 'nothing reached the upstream')

  // Content-Length 10, 5 bytes of body: the stream is reset, the upstream never sees a complete request.
  const session = (): ReturnType<typeof h2connect> => {
    const c = h2connect(`http://127.0.0.1:${fx.port}`)
    c.on('error', () => {})
    t.teardown(() => { c.destroy() })
    return c
  }
  const rst = await new Promise<number>((resolve) => {
    const s = session().request({ ':method': 'POST', ':path': '/short', 'content-length': '10' })
    s.on('error', () => {})
    s.on('close', () => { resolve(s.rstCode ?? -1) })
    s.resume()
    s.end('hello')
  })
  t.not(rst, 0, 'short body: stream reset')
  // And more body than the Content-Length.
  const rst2 = await new Promise<number>((resolve) => {
    const s = session().request({ ':method': 'POST', ':path': '/long', 'content-length': '3' })
    s.on('error', () => {})
    s.on('close', () => { resolve(s.rstCode ?? -1) })
    s.resume()
    s.end('hello GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n')
  })
  t.not(rst2, 0, 'long body: stream reset')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(completed.filter((l) => l.startsWith('/smuggled') || l.startsWith('/short') || l.startsWith('/long')), [], 'no request completed upstream, none smuggled')
})

t.test('a declared port\'s client that sends nothing is closed after the header timeout, counted header_timeout', async (t) => {
  const reasons: string[] = []
  const fx = await startEngine(t, { version: 'http2', declared: true, endpoints: [1], limits: { headerTimeoutMs: 200 }, refusals: { refused (r) { reasons.push(r) } } })
  const { socket, closed } = rawH2(fx.port)
  t.teardown(() => { socket.destroy() })
  const started = Date.now()
  await closed
  t.ok(Date.now() - started >= 150, 'closed by the timeout, not at once')
  t.same(reasons, ['header_timeout'])
})
