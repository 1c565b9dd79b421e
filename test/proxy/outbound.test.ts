import t from 'tap'
import { connect, type Socket } from 'node:net'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { blackhole, listen, podNamed, routesFor, startOutbound, type Teardown } from './harness'
import { counter } from '../telemetry/prom-text'
import { dial, drain } from '../helpers/net'
import { waitFor } from '../helpers/wait'

// The outbound path end to end on loopback: a client stands for the app, the proxy's
// listener for the pod's 15001, "pod IPs" are 127.0.0.x addresses where test servers
// listen, and the original destination is what the test says eBPF recorded.

/** A server that answers every connection with its name and then echoes, closing when the client does. */
async function namedServer (t: Teardown, host: string, name: string): Promise<number> {
  const { port } = await listen(t, host, (s: Socket) => {
    s.write(`${name}\n`)
    s.on('data', (c) => s.write(c))
    s.on('end', () => s.end())
    s.on('error', () => {})
  })
  return port
}

async function cluster (t: Teardown): Promise<{ routes: ReturnType<typeof routesFor>, portA: number, portB: number, port6: number }> {
  const portA = await namedServer(t, '127.0.0.2', 'server-a')
  const portB = await namedServer(t, '127.0.0.3', 'server-b')
  const port6 = await namedServer(t, '::1', 'server-6')
  const routes = routesFor([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5', 'fd00:244::5'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['127.0.0.2'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: portA }] }),
    podObj({ name: 'server-b', ips: ['127.0.0.3'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: portB }] }),
    podObj({ name: 'server-6', ips: ['::1'], labels: { app: 'six' }, ports: [{ name: 'http', containerPort: port6 }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http' }] }),
    serviceObj({ name: 'six', clusterIPs: ['fd00:96::a'], selector: { app: 'six' }, ports: [{ port: 80, targetPort: 'http' }] }),
    serviceObj({ name: 'empty', clusterIPs: ['10.96.0.20'], selector: { app: 'nobody' }, ports: [{ port: 80 }] })
  ])
  return { routes, portA, portB, port6 }
}

/** One request through the proxy: returns the first line the server answered and how the connection ended. */
async function exchange (port: number, payload = 'ping'): Promise<{ text: string, ended: string, code?: string, local: number }> {
  let c: Socket
  try {
    c = await dial(port)
  } catch (err) {
    // The proxy's RST can beat Node's own 'connect' on loopback: the app saw a reset either way.
    return { text: '', ended: 'error', code: (err as NodeJS.ErrnoException).code, local: 0 }
  }
  const local = c.localPort!
  c.end(payload)
  const r = await drain(c)
  return { text: r.data.toString(), ended: r.ended, code: r.code, local }
}

t.test('a Service VIP is balanced round robin over its endpoints and logged with source and destination', async (t) => {
  const { routes, portA, portB } = await cluster(t)
  const asked: Array<[number, number]> = []
  const proxy = await startOutbound(t, {
    routes,
    pod: podNamed(routes, 'client'),
    lookup: (family, port) => { asked.push([family, port]); return { address: '10.96.0.10', port: 80 } }
  })
  const results = []
  for (let i = 0; i < 4; i++) results.push(await exchange(proxy.port, `req${i}`))
  t.same(results.map((r) => r.text.split('\n')[0]), ['server-a', 'server-b', 'server-a', 'server-b'])
  t.same(results.map((r) => r.text.split('\n')[1]), ['req0', 'req1', 'req2', 'req3'], 'payload relayed')
  t.same(asked, results.map((r) => [4, r.local]), 'original dst looked up by family and the app\'s local port')
  const lines = await proxy.accessLines(4)
  const first = lines[0]
  t.match(first, {
    msg: 'access',
    direction: 'outbound',
    source: { pod: 'client', namespace: 'app', workload: 'client', ip: '10.244.0.5', port: results[0].local },
    original_destination: '10.96.0.10:80',
    destination_service: 'server.app',
    endpoint: `127.0.0.2:${portA}`,
    destination: { pod: 'server-a', namespace: 'app', workload: 'server' },
    bytes_received: 4,
    bytes_sent: 'server-a\n'.length + 4,
    result: 'ok'
  })
  t.equal(first.error_code, undefined)
  t.ok(first.duration_ms >= 0)
  t.equal(lines[1].endpoint, `127.0.0.3:${portB}`)
  const text = await proxy.metrics.text()
  const labels = { reporter: 'source', source_workload: 'client', source_workload_namespace: 'app', destination_service: 'server.app.svc.cluster.local', destination_workload_namespace: 'app' }
  t.equal(counter(text, 'istio_tcp_connections_opened_total', labels), 4)
  t.equal(counter(text, 'istio_tcp_connections_closed_total', { ...labels, response_flags: '-' }), 4)
  t.equal(counter(text, 'istio_tcp_connections_opened_total', { ...labels, destination_workload: 'server' }), 4)
  t.equal(counter(text, 'istio_tcp_received_bytes_total', labels), 16)
  t.equal(counter(text, 'istio_tcp_sent_bytes_total', labels), 2 * ('server-a\n'.length + 4) + 2 * ('server-b\n'.length + 4))
  t.equal(counter(text, 'ferry_tcp_connections_active', { direction: 'outbound' }), 0)
})

t.test('an IPv6 VIP goes to an IPv6 endpoint and is logged with brackets', async (t) => {
  const { routes, port6 } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: 'FD00:96::A', port: 80 }) })
  const r = await exchange(proxy.port)
  t.equal(r.text, 'server-6\nping')
  const [line] = await proxy.accessLines(1)
  t.equal(line.original_destination, '[fd00:96::a]:80')
  t.equal(line.endpoint, `[::1]:${port6}`)
  t.equal(line.destination_service, 'six.app')
})

t.test('a destination that is not a VIP passes through unchanged; a known pod is still named', async (t) => {
  const { routes, portB } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.3', port: portB }) })
  t.equal((await exchange(proxy.port)).text, 'server-b\nping')
  const [line] = await proxy.accessLines(1)
  t.equal(line.original_destination, `127.0.0.3:${portB}`)
  t.equal(line.endpoint, `127.0.0.3:${portB}`)
  t.equal(line.destination_service, undefined)
  t.same(line.destination, { pod: 'server-b', namespace: 'app', workload: 'server' })
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { destination_service: 'unknown', destination_workload: 'server', response_flags: '-' }), 1)
})

t.test('no original destination: the app\'s connection is reset, counted and logged', async (t) => {
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => null })
  const r = await exchange(proxy.port)
  t.equal(r.ended, 'error')
  t.equal(r.code, 'ECONNRESET')
  const [line] = await proxy.accessLines(1)
  t.equal(line.result, 'no_original_dst')
  t.equal(line.original_destination, undefined)
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { response_flags: 'NR', source_workload: 'client' }), 1)
})

t.test('a Service without endpoints: no_endpoints, with the service named', async (t) => {
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.20', port: 80 }) })
  const r = await exchange(proxy.port)
  t.equal(r.code, 'ECONNRESET')
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'no_endpoints', destination_service: 'empty.app', original_destination: '10.96.0.20:80' })
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { response_flags: 'UH', destination_service: 'empty.app.svc.cluster.local' }), 1)
})

t.test('readiness: a pod that is not ready gets no connections; none ready is no_endpoints; ready again, routed again', async (t) => {
  const portA = await namedServer(t, '127.0.0.2', 'server-a')
  const portB = await namedServer(t, '127.0.0.3', 'server-b')
  const items = (aReady: boolean, bReady: boolean): Array<Record<string, unknown>> => [
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['127.0.0.2'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: portA }], ready: aReady }),
    podObj({ name: 'server-b', ips: ['127.0.0.3'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: portB }], ready: bReady }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http' }] })
  ]
  const routes = routesFor(items(true, false))
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 80 }) })
  const firstLines = async (n: number): Promise<string[]> => { const out: string[] = []; for (let i = 0; i < n; i++) out.push((await exchange(proxy.port)).text.split('\n')[0]); return out }
  t.same(await firstLines(4), ['server-a', 'server-a', 'server-a', 'server-a'], 'server-b is not ready: never picked')
  routes.update(parseClusterList(listText(items(false, false)), 'test', 2))
  const r = await exchange(proxy.port)
  t.equal(r.code, 'ECONNRESET', 'none ready: reset')
  const lines = await proxy.accessLines(5)
  t.match(lines.filter((l) => l.result !== 'ok'), [{ result: 'no_endpoints', destination_service: 'server.app' }])
  routes.update(parseClusterList(listText(items(true, true)), 'test', 3))
  t.same((await firstLines(4)).sort(), ['server-a', 'server-a', 'server-b', 'server-b'], 'both ready: both picked')
})

t.test('connect refused: connect_error ECONNREFUSED, the app is reset', async (t) => {
  const { routes } = await cluster(t)
  const { server, port } = await listen(t, '127.0.0.1', () => {})
  await new Promise((resolve) => server.close(resolve))
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.1', port }) })
  const r = await exchange(proxy.port)
  t.equal(r.code, 'ECONNRESET')
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'connect_error', error_code: 'ECONNREFUSED' })
  const text = await proxy.metrics.text()
  t.equal(counter(text, 'istio_tcp_connections_closed_total', { response_flags: 'UF' }), 1)
  t.equal(counter(text, 'istio_tcp_connections_opened_total', { reporter: 'source' }), 1)
})

t.test('connect timeout: a destination that never answers the SYN gives connect_timeout after the timeout', async (t) => {
  const { routes } = await cluster(t)
  const port = await blackhole(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.1', port }), connectTimeoutMs: 300 })
  const started = Date.now()
  const r = await exchange(proxy.port)
  const took = Date.now() - started
  t.equal(r.code, 'ECONNRESET')
  t.ok(took >= 280 && took < 2000, `reset after the connect timeout (${took} ms)`)
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'connect_timeout', error_code: 'ETIMEDOUT' })
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { response_flags: 'UF' }), 1)
})

t.test('a connector that throws (the pod netns is gone) is a connect_error, not an exception', async (t) => {
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, {
    routes,
    pod: podNamed(routes, 'client'),
    lookup: () => ({ address: '10.96.0.10', port: 80 }),
    connector: () => { throw Object.assign(new Error('netns gone'), { code: 'FERRY_ERR_NETNS', errno: 'ENOENT' }) }
  })
  const r = await exchange(proxy.port)
  t.equal(r.code, 'ECONNRESET')
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'connect_error', error_code: 'ENOENT' })
})

t.test('bytes of a live connection are in the counters at scrape time, before it closes', async (t) => {
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 80 }) })
  const c = await dial(proxy.port)
  const got: Buffer[] = []
  c.on('data', (d) => got.push(d))
  c.write('0123456789')
  await waitFor(() => Buffer.concat(got).length >= 'server-a\n0123456789'.length, { timeoutMs: 3000, what: 'the echo' })
  const text = await proxy.metrics.text()
  t.equal(counter(text, 'istio_tcp_received_bytes_total', { destination_service: 'server.app.svc.cluster.local' }), 10)
  t.equal(counter(text, 'istio_tcp_sent_bytes_total', { destination_service: 'server.app.svc.cluster.local' }), 19)
  t.equal(counter(text, 'ferry_tcp_connections_active', { direction: 'outbound' }), 1)
  t.equal(proxy.lines.length, 0, 'no access line until it closes')
  c.end()
  await drain(c)
  await proxy.accessLines(1)
  const after = await proxy.metrics.text()
  t.equal(counter(after, 'istio_tcp_received_bytes_total', { destination_service: 'server.app.svc.cluster.local' }), 10, 'not counted twice')
  t.equal(counter(after, 'istio_tcp_sent_bytes_total', { destination_service: 'server.app.svc.cluster.local' }), 19)
  t.equal(counter(after, 'ferry_tcp_connections_active', { direction: 'outbound' }), 0)
})

t.test('half-close through the proxy, even though the connector made a plain (not half-open) socket', async (t) => {
  // A server that answers only after the client has finished sending (like `nc -q`, or an upload).
  const { port } = await listen(t, '127.0.0.2', (s: Socket) => {
    let got = ''
    s.on('data', (c) => { got += String(c) })
    s.on('end', () => { setTimeout(() => { s.end(`after FIN: ${got}`) }, 30) })
  }, { allowHalfOpen: true })
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.2', port }) })
  const r = await exchange(proxy.port, 'upload')
  t.equal(r.text, 'after FIN: upload')
  t.equal(r.ended, 'end')
  const [line] = await proxy.accessLines(1)
  t.equal(line.result, 'ok')
})

t.test('a reset in the middle of a connection: the server is reset too, result reset, counted', async (t) => {
  let serverSaw: string | undefined
  const { port } = await listen(t, '127.0.0.2', (s: Socket) => {
    s.on('data', () => { s.write('partial') })
    s.on('error', (err: NodeJS.ErrnoException) => { serverSaw = err.code })
    s.on('end', () => { serverSaw = serverSaw ?? 'FIN' })
  })
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.2', port }) })
  const c = await dial(proxy.port)
  c.write('go')
  await new Promise((resolve) => c.once('data', resolve))
  c.resetAndDestroy()
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'reset', error_code: 'ECONNRESET', bytes_received: 2, bytes_sent: 7 })
  await waitFor(() => serverSaw !== undefined, { timeoutMs: 2000, what: 'the server to see the end' })
  t.equal(serverSaw, 'ECONNRESET', 'the server got a reset, not a FIN')
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { response_flags: 'UC' }), 1)
})

t.test('half-close the other way: the server finishes first and still receives what the client sends afterwards', async (t) => {
  let serverGot: string | undefined
  const { port } = await listen(t, '127.0.0.2', (s: Socket) => {
    let got = ''
    s.end('banner') // server is done sending at once, but keeps reading
    s.on('data', (c) => { got += String(c) })
    s.on('end', () => { serverGot = got })
    s.on('error', () => { serverGot = 'error' })
  }, { allowHalfOpen: true })
  const { routes } = await cluster(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '127.0.0.2', port }) })
  const c = await dial(proxy.port)
  const r = await drain(c)
  t.equal(r.data.toString(), 'banner')
  t.equal(r.ended, 'end', 'the client sees the server\'s FIN')
  c.end('sent after the server\'s FIN')
  await waitFor(() => serverGot !== undefined, { timeoutMs: 2000, what: 'the server to read to its end' })
  t.equal(serverGot, 'sent after the server\'s FIN')
  const [line] = await proxy.accessLines(1)
  t.equal(line.result, 'ok')
})

t.test('a connector that enforces its own deadline (ETIMEDOUT error, like connectInNetns) is a connect_timeout', async (t) => {
  const { routes } = await cluster(t)
  const port = await blackhole(t)
  const proxy = await startOutbound(t, {
    routes,
    pod: podNamed(routes, 'client'),
    lookup: () => ({ address: '127.0.0.1', port }),
    connectTimeoutMs: 5000,
    connector: (req) => {
      const s = connect({ host: req.host, port: req.port })
      const timer = setTimeout(() => { s.destroy(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })) }, 100)
      s.once('connect', () => { clearTimeout(timer) })
      return s
    }
  })
  const r = await exchange(proxy.port)
  t.equal(r.code, 'ECONNRESET')
  const [line] = await proxy.accessLines(1)
  t.match(line, { result: 'connect_timeout', error_code: 'ETIMEDOUT' })
})
