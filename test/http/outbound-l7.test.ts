import t from 'tap'
import { Agent, createServer, request } from 'node:http'
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
