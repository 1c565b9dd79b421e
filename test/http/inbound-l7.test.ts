import t from 'tap'
import { connect, type Socket } from 'node:net'
import { Agent, createServer, request } from 'node:http'
import { createServer as h2server } from 'node:http2'
import { Registry } from 'prom-client'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { createInboundHandler, RouteTable, serve, type Mesh } from '../../src/proxy'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { HttpEngine } from '../../src/http/engine'
import { createHttpRefusals, HTTP_REFUSED_METRIC } from '../../src/http/refusals'
import { L7Table } from '../../src/l7/table'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { ap, policySet } from '../policy/helpers'
import { waitFor } from '../helpers/wait'

// The plaintext inbound handler with L7 at the destination, on loopback (the proxy's
// listener stands for the pod's address; the connector reaches the app's real port):
// the pod's namespace engages L7, the port's protocol is detected. HTTP is handled per
// request (a destination record); bytes that are not HTTP are relayed — unless an L7
// policy selects the pod there, then the connection is denied.

t.test('destination L7 on a detected port: HTTP per request; not HTTP relayed, or denied under an L7 policy', async (t) => {
  const http = createServer((req, res) => { req.resume(); res.end(`app ${req.url as string}`) })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { http.closeAllConnections(); http.close() })
  const httpPort = (http.address() as { port: number }).port
  const { log, lines } = captureLog()
  const snapshot = parseClusterList(listText([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
    podObj({ name: 'server-a', ips: ['127.0.0.1'], labels: { app: 'server' } })
  ]), 'test', 1)
  const routes = new RouteTable()
  routes.update(snapshot)
  const table = L7Table.build(snapshot)
  const authz = new InboundAuthorizer({ log })
  const mesh: Mesh = { node: 'n1', identities: null, tunnels: null, tunnelPort: 15008, localPod: () => null, inboundMode: () => ({ mode: 'PERMISSIVE' }) as any, authz }
  const records: HttpRequestRecord[] = []
  const registry = new Registry()
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { records.push(r) } }, refusals: createHttpRefusals(registry) })
  t.teardown(() => { engine.close() })
  let appPort = httpPort
  const handler = createInboundHandler({
    pod: routes.index.podByIP('127.0.0.1')!,
    routes,
    connector: () => connect({ host: '127.0.0.1', port: appPort }),
    telemetry: createConnTelemetry(new ProxyMetrics(), createAccessLog(log)),
    connectTimeoutMs: 2000,
    mesh,
    l7: { table: () => table, engine, normalizePath: (raw) => ({ path: raw.replace(/\/+/g, '/') }), detected () {} }
  })
  const server = await serve({ host: '127.0.0.1', port: 0 }, handler, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const get = (path: string): Promise<string> => new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }).on('error', reject).end()
  })
  t.equal(await get('//a//b'), 'app /a/b', 'the app receives the normalized path')
  t.equal(await get('/c'), 'app /c')
  t.match(records, [{ reporter: 'destination', path: '/a/b', conn: { direction: 'inbound', destination: { pod: 'server-a' } } }, { path: '/c' }])

  // Not HTTP, no L7 policy: relayed as TCP.
  const echo = createServer()
  const raw = await import('node:net')
  const echoServer = raw.createServer((s: Socket) => { s.on('error', () => {}); s.pipe(s) })
  await new Promise<void>((resolve) => echoServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { echoServer.close(); echo.close() })
  appPort = (echoServer.address() as { port: number }).port
  const exchange = (): Promise<string> => new Promise((resolve) => {
    const c = connect(port, '127.0.0.1')
    let got = ''
    c.on('data', (d) => { got += String(d); if (got.length >= 14) c.end() })
    c.on('error', () => { resolve(`error ${got}`) })
    c.on('close', () => { resolve(got) })
    c.write('*1\r\n$4\r\nPING\r\n')
  })
  t.equal(await exchange(), '*1\r\n$4\r\nPING\r\n')
  // The same under an L7 policy (a DENY of /admin*): decided as a connection, the DENY
  // applies without its L7 condition — denied, counted.
  authz.swap(policySet(ap('app', 'l7-only', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin*"]')))
  t.notMatch(await exchange(), /PING/, 'nothing relayed')
  const m = await registry.getSingleMetric(HTTP_REFUSED_METRIC)!.get()
  t.equal(m.values.find((v) => v.labels.reason === 'not_http')?.value, 1)
  await waitFor(() => lines.some((l) => l.msg === 'access' && l.result === 'denied'), { timeoutMs: 3000, what: 'a denied access line' })
})

t.test('destination L7 on a port declared http2: an HTTP/1.1 client goes to the app as HTTP/2', async (t) => {
  const app = h2server()
  app.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 })
    stream.resume()
    stream.on('end', () => { stream.end(`h2 app ${String(headers[':path'])} ${String(headers[':authority'])}`) })
  })
  app.on('session', (s) => { t.teardown(() => { s.destroy() }) })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { app.close() })
  const appPort = (app.address() as { port: number }).port
  const { log } = captureLog()
  const routes = new RouteTable()
  let table = L7Table.build(parseClusterList(listText([]), 'test', 1))
  const authz = new InboundAuthorizer({ log })
  const mesh: Mesh = { node: 'n1', identities: null, tunnels: null, tunnelPort: 15008, localPod: () => null, inboundMode: () => ({ mode: 'PERMISSIVE' }) as any, authz }
  const records: HttpRequestRecord[] = []
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { records.push(r) } } })
  t.teardown(() => { engine.close() })
  // The proxy's listener stands for the pod's port: the Service's targetPort is its port.
  let handler: ReturnType<typeof createInboundHandler> | null = null
  const server = await serve({ host: '127.0.0.1', port: 0 }, (socket) => { handler!(socket) }, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const snapshot = parseClusterList(listText([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
    podObj({ name: 'server-a', ips: ['127.0.0.1'], labels: { app: 'server' }, ports: [{ name: 'web', containerPort: port }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.30'], selector: { app: 'server' }, ports: [{ name: 'web', port: 80, targetPort: port, appProtocol: 'http2' }] })
  ]), 'test', 1)
  routes.update(snapshot)
  table = L7Table.build(snapshot)
  handler = createInboundHandler({
    pod: routes.index.podByIP('127.0.0.1')!,
    routes,
    connector: () => connect({ host: '127.0.0.1', port: appPort }),
    telemetry: createConnTelemetry(new ProxyMetrics(), createAccessLog(log)),
    connectTimeoutMs: 2000,
    mesh,
    l7: { table: () => table, engine, normalizePath: null, detected () {} }
  })
  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/x', agent: false, headers: { host: 'server.app' } }, (res) => { let b = ''; res.on('data', (c) => { b += String(c) }); res.on('end', () => { resolve(b) }) }).on('error', reject).end()
  })
  t.equal(body, 'h2 app /x server.app')
  t.match(records, [{ reporter: 'destination', responseCode: 200, protocol: 'http' }])
})
