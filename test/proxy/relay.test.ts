import t from 'tap'
import { createHash } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { relay } from '../../src/proxy/relay'
import { listen, type Teardown } from './harness'
import { waitFor } from '../helpers/wait'
import { drain } from '../helpers/net'

// The relay alone, between two real loopback connections:
//   app ⇄ [down] relay [up] ⇄ srv

async function pair (t: Teardown): Promise<[Socket, Socket]> {
  let accepted: Socket | undefined
  const { port } = await listen(t, '127.0.0.1', (s) => { accepted = s }, { allowHalfOpen: true })
  const c = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  await new Promise((resolve) => c.once('connect', resolve))
  await waitFor(() => accepted !== undefined, { timeoutMs: 2000, what: 'accept' })
  t.teardown(() => { c.destroy(); accepted!.destroy() })
  return [c, accepted!]
}

async function rig (t: Teardown): Promise<{ app: Socket, srv: Socket, down: Socket, up: Socket, done: Promise<string | null> }> {
  const [app, down] = await pair(t)
  const [up, srv] = await pair(t)
  const done = new Promise<string | null>((resolve) => { relay(down, up, resolve) })
  return { app, srv, down, up, done }
}

t.test('bytes flow both ways and done() reports a clean end once both sides close', async (t) => {
  const { app, srv, down, done } = await rig(t)
  srv.on('data', (c) => { srv.write(Buffer.concat([Buffer.from('echo:'), c])) })
  srv.on('end', () => { srv.end() })
  app.end('hello')
  const got = await drain(app)
  t.equal(got.data.toString(), 'echo:hello')
  t.equal(got.ended, 'end')
  t.equal(await done, null)
  t.equal(down.bytesRead, 5, 'bytes from the app')
  t.equal(down.bytesWritten, 10, 'bytes to the app')
})

t.test('half-close: the app\'s FIN reaches the server while the response still flows back', async (t) => {
  const { app, srv, done } = await rig(t)
  const order: string[] = []
  srv.on('data', (c) => order.push(`srv got ${String(c)}`))
  srv.on('end', () => {
    order.push('srv got FIN')
    // Only now, after the request side is closed, does the server answer.
    setTimeout(() => { srv.write('late response'); srv.end() }, 50)
  })
  app.end('request')
  const got = await drain(app)
  t.same(order, ['srv got request', 'srv got FIN'])
  t.equal(got.data.toString(), 'late response', 'response after the FIN still delivered')
  t.equal(got.ended, 'end')
  t.equal(await done, null)
})

t.test('a reset from the app resets the server side (RST, not FIN)', async (t) => {
  const { app, srv, done } = await rig(t)
  app.write('x')
  await new Promise((resolve) => srv.once('data', resolve))
  const srvEnd = drain(srv)
  app.resetAndDestroy()
  const r = await srvEnd
  t.equal(r.ended, 'error')
  t.equal(r.code, 'ECONNRESET')
  t.equal(await done, 'ECONNRESET')
})

t.test('a reset from the server resets the app side', async (t) => {
  const { app, srv, done } = await rig(t)
  const appEnd = drain(app)
  app.write('x')
  await new Promise((resolve) => srv.once('data', resolve))
  srv.resetAndDestroy()
  const r = await appEnd
  t.equal(r.ended, 'error')
  t.equal(r.code, 'ECONNRESET')
  t.equal(await done, 'ECONNRESET')
})

t.test('backpressure: a server that does not read stalls the app instead of filling the proxy\'s memory', async (t) => {
  const TOTAL = 64 * 1024 * 1024
  const CHUNK = 64 * 1024
  const { app, srv, down, done } = await rig(t)
  srv.pause()
  const sentHash = createHash('sha256')
  const recvHash = createHash('sha256')
  let received = 0
  srv.on('data', (c: Buffer) => { recvHash.update(c); received += c.length })
  const chunk = Buffer.alloc(CHUNK)
  let written = 0
  let n = 0
  // Write as fast as the app's socket allows (bounded by TOTAL).
  const writer = (async () => {
    while (written < TOTAL) {
      chunk.fill(n++ & 0xff)
      sentHash.update(chunk)
      written += CHUNK
      if (!app.write(Buffer.from(chunk))) await new Promise((resolve) => app.once('drain', resolve))
    }
    app.end()
  })()
  await new Promise((resolve) => setTimeout(resolve, 500))
  const readByProxy = down.bytesRead
  t.ok(readByProxy < TOTAL / 2, `while the server is stalled the proxy read ${readByProxy} of ${TOTAL} bytes`)
  t.ok(written < TOTAL, 'the app is held back too')
  srv.on('end', () => { srv.end() })
  srv.resume()
  await writer
  await waitFor(() => received === TOTAL, { timeoutMs: 20_000, what: 'all bytes at the server' })
  t.equal(recvHash.digest('hex'), sentHash.digest('hex'), 'same bytes, same order')
  await drain(app)
  t.equal(await done, null)
})
