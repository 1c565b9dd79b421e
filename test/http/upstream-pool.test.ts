import t from 'tap'
import { createServer, request, type Agent } from 'node:http'
import type { Socket } from 'node:net'
import { UpstreamPools } from '../../src/http/upstream-pool'
import type { UpstreamTarget } from '../../src/http/context'
import { dialLoopback } from '../helpers/http-harness'

// Pooled HTTP/1.1 upstream connections are reused while in use and closed by the pool
// once idle for its idle timeout, even when the server would keep them far longer.

function get (agent: Agent, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = ''
      res.on('data', (c) => { body += String(c) })
      res.on('end', () => { resolve(body) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('an idle pooled HTTP/1.1 connection is closed after the idle timeout; one in use is reused', async (t) => {
  const conns: Socket[] = []
  const srv = createServer((req, res) => { req.resume(); res.end('ok') })
  srv.keepAliveTimeout = 60_000
  srv.on('connection', (s: Socket) => { conns.push(s) })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  const port = (srv.address() as { port: number }).port
  const target: UpstreamTarget = {
    key: `pool-test|127.0.0.1:${port}`,
    address: { address: '127.0.0.1', port, family: 4 },
    record: null as unknown as UpstreamTarget['record'],
    local: null,
    dial: async () => await dialLoopback(port)
  }
  const pools = new UpstreamPools(300)
  t.teardown(() => { pools.close() })
  const agent = pools.agent(target)

  t.equal(await get(agent, port), 'ok')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(await get(agent, port), 'ok')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(await get(agent, port), 'ok')
  t.equal(conns.length, 1, 'requests within the idle timeout reuse the one connection (its timer restarts)')
  const started = Date.now()
  await new Promise<void>((resolve) => { conns[0].once('close', () => { resolve() }) })
  const waited = Date.now() - started
  t.ok(waited >= 250 && waited < 2000, `closed by the pool after ~300 ms idle (${waited} ms), not by the server's 60 s`)
  t.equal(await get(agent, port), 'ok', 'the next request dials a new connection')
  t.equal(conns.length, 2)
})
