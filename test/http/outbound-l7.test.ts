import t from 'tap'
import { Agent, createServer, request } from 'node:http'
import { connect as h2connect, createServer as h2server } from 'node:http2'
import { connect } from 'node:net'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { createOutboundHandler, RouteTable, serve } from '../../src/proxy'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { HttpEngine } from '../../src/http/engine'
import { L7Table } from '../../src/l7/table'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { captureLog, podNamed } from '../proxy/harness'
import { waitFor } from '../helpers/wait'

// The outbound handler with L7 on loopback: a Service port where L7 is engaged is handled
// request by request (keep-alive requests on one client connection balanced over the
// endpoints); a Service without it is relayed as before.

t.test('an L7 Service port: requests balanced one by one; an L4 one: relayed', async (t) => {
  const ports: number[] = []
  for (const [host, name] of [['127.0.0.2', 'server-a'], ['127.0.0.3', 'server-b']]) {
    const srv = createServer((req, res) => { req.resume(); res.end(name) })
    await new Promise<void>((resolve) => srv.listen(0, host, resolve))
    t.teardown(() => { srv.closeAllConnections(); srv.close() })
    ports.push((srv.address() as { port: number }).port)
  }
  const items = [
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['127.0.0.2'], labels: { app: 'server' }, ports: [{ name: 'http', containerPort: ports[0] }] }),
    podObj({ name: 'server-b', ips: ['127.0.0.3'], labels: { app: 'server' }, ports: [{ name: 'http', containerPort: ports[1] }] }),
    serviceObj({ name: 'server', annotations: { 'ferry.dev/l7': 'enabled' }, clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 'http', appProtocol: 'http' }] }),
    serviceObj({ name: 'plain', clusterIPs: ['10.96.0.11'], selector: { app: 'server' }, ports: [{ name: 'tcp', port: 80, targetPort: 'http' }] })
  ]
  const snapshot = parseClusterList(listText(items), 'test', 1)
  const routes = new RouteTable()
  routes.update(snapshot)
  const table = L7Table.build(snapshot)
  const records: HttpRequestRecord[] = []
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { records.push(r) } } })
  t.teardown(() => { engine.close() })
  const { log, lines } = captureLog()
  let dst = { address: '10.96.0.10', port: 80 }
  const handler = createOutboundHandler({
    pod: podNamed(routes, 'client'),
    originalDst: () => dst,
    routes,
    connector: (req) => connect({ host: req.host, port: req.port, allowHalfOpen: true }),
    telemetry: createConnTelemetry(new ProxyMetrics(), createAccessLog(log)),
    connectTimeoutMs: 2000,
    l7: { table: () => table, engine, normalizePath: null, detected () {} }
  })
  const server = await serve({ host: '127.0.0.1', port: 0 }, handler, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const get = (): Promise<string> => new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, agent, headers: { host: 'server.app' } }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }).on('error', reject).end()
  })
  const names = [await get(), await get(), await get()]
  t.same(names, ['server-a', 'server-b', 'server-a'], 'one client connection, balanced per request')
  t.match(records[0], { reporter: 'source', method: 'GET', responseCode: 200, conn: { service: 'server.app', destination: { pod: 'server-a' } } })
  t.match(records[1], { conn: { destination: { pod: 'server-b' } } })
  agent.destroy()
  await waitFor(() => lines.some((l) => l.msg === 'access'), { timeoutMs: 3000, what: 'the connection access line' })
  t.match(lines.find((l) => l.msg === 'access'), { direction: 'outbound', destination_service: 'server.app', result: 'ok' })
  // L4 Service: bytes relayed as they are.
  dst = { address: '10.96.0.11', port: 80 }
  const text = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, agent: false }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }).on('error', reject).end()
  })
  t.match(text, /^server-/)
  t.equal(records.length, 3, 'no request record for an L4 connection')
})

t.test('the upstream follows the declared port: HTTP/1.1 to an h2c port goes up as HTTP/2, HTTP/2 to an http port as HTTP/1.1', async (t) => {
  const h2 = h2server()
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 })
    stream.resume()
    stream.on('end', () => { stream.end(`h2 upstream saw ${String(headers[':authority'])}`) })
  })
  h2.on('session', (s) => { t.teardown(() => { s.destroy() }) })
  await new Promise<void>((resolve) => h2.listen(0, '127.0.0.2', resolve))
  t.teardown(() => { h2.close() })
  const h1 = createServer((req, res) => { req.resume(); res.end(`h${req.httpVersion} upstream saw ${req.headers.host ?? ''}`) })
  await new Promise<void>((resolve) => h1.listen(0, '127.0.0.3', resolve))
  t.teardown(() => { h1.closeAllConnections(); h1.close() })
  const items = [
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5'], labels: { app: 'client' } }),
    podObj({ name: 'h2c', ips: ['127.0.0.2'], labels: { app: 'h2c' }, ports: [{ name: 'web', containerPort: (h2.address() as { port: number }).port }] }),
    podObj({ name: 'h1', ips: ['127.0.0.3'], labels: { app: 'h1' }, ports: [{ name: 'web', containerPort: (h1.address() as { port: number }).port }] }),
    serviceObj({ name: 'h2c', annotations: { 'ferry.dev/l7': 'enabled' }, clusterIPs: ['10.96.0.20'], selector: { app: 'h2c' }, ports: [{ name: 'web', port: 80, targetPort: 'web', appProtocol: 'kubernetes.io/h2c' }] }),
    serviceObj({ name: 'h1', annotations: { 'ferry.dev/l7': 'enabled' }, clusterIPs: ['10.96.0.21'], selector: { app: 'h1' }, ports: [{ name: 'http-web', port: 80, targetPort: 'web' }] })
  ]
  const snapshot = parseClusterList(listText(items), 'test', 1)
  const routes = new RouteTable()
  routes.update(snapshot)
  const table = L7Table.build(snapshot)
  const records: HttpRequestRecord[] = []
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { records.push(r) } } })
  t.teardown(() => { engine.close() })
  const { log } = captureLog()
  let dst = { address: '10.96.0.20', port: 80 }
  const handler = createOutboundHandler({
    pod: podNamed(routes, 'client'),
    originalDst: () => dst,
    routes,
    connector: (req) => connect({ host: req.host, port: req.port, allowHalfOpen: true }),
    telemetry: createConnTelemetry(new ProxyMetrics(), createAccessLog(log)),
    connectTimeoutMs: 2000,
    l7: { table: () => table, engine, normalizePath: null, detected () {} }
  })
  const server = await serve({ host: '127.0.0.1', port: 0 }, handler, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const h1body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, method: 'POST', agent: false, headers: { host: 'h2c.app' } }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }).on('error', reject).end('body')
  })
  t.equal(h1body, 'h2 upstream saw h2c.app', 'HTTP/1.1 client, HTTP/2 endpoint')
  dst = { address: '10.96.0.21', port: 80 }
  const c = h2connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  t.teardown(() => { c.destroy() })
  const h2body = await new Promise<string>((resolve, reject) => {
    const s = c.request({ ':path': '/', ':authority': 'h1.app' })
    let b = ''
    s.on('data', (d: Buffer) => { b += d.toString() })
    s.on('end', () => { resolve(b) })
    s.on('error', reject)
  })
  t.equal(h2body, 'h1.1 upstream saw h1.app', 'HTTP/2 client, HTTP/1.1 endpoint')
  t.match(records, [{ reporter: 'source', responseCode: 200, conn: { destination: { pod: 'h2c' } } }, { reporter: 'source', responseCode: 200, conn: { destination: { pod: 'h1' } } }])
})
