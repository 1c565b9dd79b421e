import { connect, type Socket } from 'node:net'
import { createServer, get } from 'node:http'
import { connect as h2connect, constants, createServer as h2server } from 'node:http2'
import t from 'tap'
import { Registry } from 'prom-client'
import { createHttpRefusals, HTTP_REFUSED_METRIC } from '../../src/http/refusals'
import { resolveHttpLimits } from '../../src/http/options'
import { startEngine, type Teardown } from '../helpers/http-harness'
import { FLAG, FRAME, GET_HEADER_BLOCK, h2Frame, h2Hello, rawH2 } from '../helpers/h2-frames'

async function okServer (t: Teardown): Promise<number> {
  const srv = createServer((req, res) => { req.resume(); req.on('end', () => { res.end('ok') }) })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  return (srv.address() as { port: number }).port
}

/** Sends `raw` on a new connection; resolves with everything read until the proxy closes it. */
function rawExchange (port: number, raw: string | Buffer, keep?: (s: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    let got = ''
    s.on('data', (d) => { got += String(d) })
    s.on('error', () => {})
    s.on('close', () => { resolve(got) })
    s.write(raw)
    keep?.(s)
  })
}

async function refusedCount (registry: Registry, reason: string): Promise<number> {
  const m = await registry.getSingleMetric(HTTP_REFUSED_METRIC)!.get()
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0
}

function engineWith (t: Teardown, endpoints: number[], version: 'http1' | 'http2' = 'http1', limits = {}): Promise<{ port: number, registry: Registry }> {
  const registry = new Registry()
  return startEngine(t, { version, endpoints, refusals: createHttpRefusals(registry), limits }).then((fx) => ({ port: fx.port, registry }))
}

t.test('limits are validated once and frozen', async (t) => {
  const l = resolveHttpLimits({ maxHeaders: 50 })
  t.equal(l.maxHeaders, 50)
  t.equal(l.maxHeaderBytes, 60 * 1024)
  t.ok(Object.isFrozen(l))
  t.throws(() => resolveHttpLimits({ maxHeader: 1 } as any), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => resolveHttpLimits({ headerTimeoutMs: -1 }), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('oversized headers: 431 and closed; too many headers: 431; others unharmed', async (t) => {
  const up = await okServer(t)
  const { port, registry } = await engineWith(t, [up])
  const big = await rawExchange(port, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`)
  t.match(big, /^HTTP\/1.1 431 /)
  let many = 'GET / HTTP/1.1\r\nhost: x\r\n'
  for (let i = 0; i < 120; i++) many += `x-h${i}: v\r\n`
  const m = await rawExchange(port, many + '\r\n')
  t.match(m, /^HTTP\/1.1 431 /)
  t.equal(await refusedCount(registry, 'header_too_large'), 1)
  t.equal(await refusedCount(registry, 'too_many_headers'), 1)
  const fine = await new Promise<string>((resolve) => { get({ port, host: '127.0.0.1' }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }) })
  t.equal(fine, 'ok', 'a normal request is served')
})

t.test('request smuggling (Content-Length with Transfer-Encoding) and invalid characters: 400 and closed', async (t) => {
  const up = await okServer(t)
  const { port, registry } = await engineWith(t, [up])
  const smuggle = await rawExchange(port, 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n')
  t.match(smuggle, /^HTTP\/1.1 400 /)
  t.notMatch(smuggle, /ok/, 'nothing was forwarded')
  const twoCl = await rawExchange(port, 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcde')
  t.match(twoCl, /^HTTP\/1.1 400 /)
  const bad = await rawExchange(port, 'GET / HTTP/1.1\r\nhost: x\r\nx-bad\x01name: v\r\n\r\n')
  t.match(bad, /^HTTP\/1.1 400 /)
  t.equal(await refusedCount(registry, 'smuggling'), 2)
  t.equal(await refusedCount(registry, 'invalid'), 1)
})

t.test('slowloris: headers not complete in time get 408 and the connection is closed', async (t) => {
  const up = await okServer(t)
  const { port, registry } = await engineWith(t, [up], 'http1', { headerTimeoutMs: 200 })
  const started = Date.now()
  let timer: NodeJS.Timeout | undefined
  const got = await rawExchange(port, 'GET / HTTP/1.1\r\nhost: x\r\n', (s) => {
    timer = setInterval(() => { if (!s.destroyed) s.write('x-slow: 1\r\n') }, 50)
  })
  clearInterval(timer)
  t.match(got, /^HTTP\/1.1 408 /)
  t.ok(Date.now() - started < 2000, 'within two header timeouts (and scheduling)')
  t.equal(await refusedCount(registry, 'header_timeout'), 1)
})

t.test('HTTP/2 rapid reset: GOAWAY and closed, counted; another connection is unharmed', async (t) => {
  const srv = h2server()
  srv.on('stream', (s) => { s.on('error', () => {}); setTimeout(() => { if (!s.closed) { s.respond({ ':status': 200 }); s.end('ok') } }, 100) })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  const { port, registry } = await engineWith(t, [(srv.address() as { port: number }).port], 'http2', { maxResetsPerSecond: 20 })
  const attacker = h2connect(`http://127.0.0.1:${port}`)
  attacker.on('error', () => {})
  const goaway = new Promise<number>((resolve) => { attacker.on('goaway', (code) => { resolve(code) }); attacker.on('close', () => { resolve(-1) }) })
  await new Promise((resolve) => attacker.once('connect', resolve))
  for (let i = 0; i < 60 && !attacker.destroyed && !attacker.closed; i++) {
    const s = attacker.request({ ':path': '/' })
    s.on('error', () => {})
    s.close(constants.NGHTTP2_CANCEL)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const code = await goaway
  t.ok(code === constants.NGHTTP2_ENHANCE_YOUR_CALM || code === -1, `GOAWAY ENHANCE_YOUR_CALM or closed (${code})`)
  t.equal(await refusedCount(registry, 'rapid_reset'), 1)
  const good = h2connect(`http://127.0.0.1:${port}`)
  t.teardown(() => { good.close(); attacker.destroy() })
  const body = await new Promise<string>((resolve, reject) => {
    const s = good.request({ ':path': '/' })
    let b = ''
    s.on('data', (c) => { b += String(c) })
    s.on('end', () => { resolve(b) })
    s.on('error', reject)
  })
  t.equal(body, 'ok')
})

t.test('HTTP/2: the concurrent stream limit is announced and enforced', async (t) => {
  const srv = h2server()
  srv.on('stream', (s) => { s.on('error', () => {}) /* never answers */ })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  const { port } = await engineWith(t, [(srv.address() as { port: number }).port], 'http2', { maxConcurrentStreams: 5 })
  const c = h2connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  t.teardown(() => { c.destroy() })
  const settings = await new Promise<any>((resolve) => c.once('remoteSettings', resolve))
  t.equal(settings.maxConcurrentStreams, 5)
})

/** Resolves true when `closed` settles within `ms`, false otherwise. */
async function closedWithin (closed: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, ms) })
  const got = await Promise.race([closed.then(() => true), late])
  clearTimeout(timer)
  return got
}

async function h2Upstream (t: Teardown, answer: boolean): Promise<number> {
  const srv = h2server()
  srv.on('stream', (s) => { s.on('error', () => {}); if (answer) { s.respond({ ':status': 200 }); s.end('ok') } })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.close() })
  return (srv.address() as { port: number }).port
}

t.test('HTTP/2 header timeout: a preface and SETTINGS, then nothing, is cut and counted', async (t) => {
  const { port, registry } = await engineWith(t, [await h2Upstream(t, true)], 'http2', { headerTimeoutMs: 200 })
  const c = rawH2(port)
  t.teardown(() => { c.socket.destroy() })
  c.socket.write(h2Hello())
  t.ok(await closedWithin(c.closed, 3000), 'closed within the header timeout (and scheduling), long before the idle timeout')
  t.equal(await refusedCount(registry, 'header_timeout'), 1)
})

t.test('HTTP/2 slowloris: a header block left open is cut; an idle connection after a request is not', async (t) => {
  const { port, registry } = await engineWith(t, [await h2Upstream(t, true)], 'http2', { headerTimeoutMs: 200 })
  const c = rawH2(port)
  t.teardown(() => { c.socket.destroy() })
  c.socket.write(Buffer.concat([h2Hello(), h2Frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, GET_HEADER_BLOCK)]))
  t.notOk(await closedWithin(c.closed, 800), 'idle after a complete request: open past several header timeouts')
  t.equal(await refusedCount(registry, 'header_timeout'), 0)
  // HEADERS without END_HEADERS: the block waits for a CONTINUATION that never comes.
  c.socket.write(h2Frame(FRAME.HEADERS, FLAG.END_STREAM, 3, GET_HEADER_BLOCK))
  t.ok(await closedWithin(c.closed, 3000), 'cut within two header timeouts (and scheduling)')
  t.equal(await refusedCount(registry, 'header_timeout'), 1)
})

t.test('HTTP/2 stream flood: streams beyond the concurrency limit end the session, counted as h2_stream_flood', async (t) => {
  const { port, registry } = await engineWith(t, [await h2Upstream(t, false)], 'http2', { maxConcurrentStreams: 3 })
  const c = rawH2(port)
  t.teardown(() => { c.socket.destroy() })
  const frames = [h2Hello()]
  for (let id = 1; id <= 41; id += 2) frames.push(h2Frame(FRAME.HEADERS, FLAG.END_HEADERS, id, GET_HEADER_BLOCK))
  c.socket.write(Buffer.concat(frames))
  t.ok(await closedWithin(c.closed, 3000), 'the session ended')
  t.equal(await refusedCount(registry, 'h2_stream_flood'), 1)
  t.equal(await refusedCount(registry, 'h2_protocol'), 0)
})
