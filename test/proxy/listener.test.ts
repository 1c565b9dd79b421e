import t from 'tap'
import { connect, type Socket } from 'node:net'
import { closeServer, serve } from '../../src/proxy/listener'

// The capture stage's listener: accepted sockets start paused and half-open capable;
// closing stops accepting at once without waiting for (or cutting) live connections.

t.test('accepted sockets are paused and allowHalfOpen; close stops accepting without waiting for live connections', async (t) => {
  let accepted: Socket | undefined
  const server = await serve({ host: '127.0.0.1', port: 0 }, (s) => { accepted = s }, (err) => { throw err })
  const port = (server.address() as { port: number }).port
  const c = connect({ host: '127.0.0.1', port })
  t.teardown(() => { c.destroy() })
  c.write('early bytes')
  for (let i = 0; i < 200 && accepted === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const s = accepted!
  t.ok(s.allowHalfOpen, 'half-open capable')
  t.equal(s.isPaused(), true, 'paused until an upstream exists')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(s.bytesRead, 0, 'nothing read while paused')
  const started = Date.now()
  await closeServer(server)
  t.ok(Date.now() - started < 500, 'close did not wait for the live connection')
  const refused = await new Promise<string>((resolve) => {
    const x = connect({ host: '127.0.0.1', port })
    x.on('connect', () => { x.destroy(); resolve('connected') })
    x.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
  t.equal(refused, 'ECONNREFUSED', 'no longer accepting')
  s.resume()
  const got = await new Promise<string>((resolve) => s.once('data', (d) => resolve(String(d))))
  t.equal(got, 'early bytes', 'the live connection still works')
  s.destroy()
})

t.test('a listen error rejects serve()', async (t) => {
  const a = await serve({ host: '127.0.0.1', port: 0 }, () => {}, () => {})
  t.teardown(() => { a.close() })
  const port = (a.address() as { port: number }).port
  await t.rejects(serve({ host: '127.0.0.1', port }, () => {}, () => {}), { code: 'EADDRINUSE' })
})
