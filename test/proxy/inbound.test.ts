import t from 'tap'
import { connect, type Socket } from 'node:net'
import type { ConnectRequest } from '../../src/proxy'
import { namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { counter } from '../telemetry/prom-text'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { listText } from '../discovery/fixture'
import { listen, routesFor, startInbound } from './harness'
import { dial, drain } from '../helpers/net'

// The inbound path on loopback. In a pod, sk_lookup hands the proxy a SYN addressed to
// podIP:8080 and the proxy connects to podIP:8080 from inside the pod's netns. Here the
// proxy's own listener stands for that address, so the test connector records what the
// proxy asked for (the original destination) and connects to the app's real port.

t.test('inbound: source named by peer IP, original destination = local address, relayed to the app', async (t) => {
  const { port: appPort } = await listen(t, '127.0.0.1', (s: Socket) => {
    s.on('data', (c) => s.write(`app got ${String(c)} from ${s.remoteAddress as string}`))
    s.on('end', () => s.end())
  })
  const routes = routesFor([
    namespaceObj('app'),
    podObj({ name: 'client', ips: ['127.0.0.7'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['127.0.0.1'], labels: { app: 'server' }, deployment: 'server' })
  ])
  const asked: ConnectRequest[] = []
  const proxy = await startInbound(t, {
    routes,
    pod: routes.index.podByIP('127.0.0.1')!,
    host: '127.0.0.1',
    connector: (req) => { asked.push(req); return connect({ host: '127.0.0.1', port: appPort }) }
  })
  const c = await dial(proxy.port, { localAddress: '127.0.0.7' })
  const local = c.localPort
  c.end('hi')
  const r = await drain(c)
  t.equal(r.data.toString(), 'app got hi from 127.0.0.1')
  t.same(asked, [{ host: '127.0.0.1', port: proxy.port, family: 4, timeoutMs: 2000 }], 'connects to the original destination')
  const [line] = await proxy.accessLines(1)
  t.match(line, {
    direction: 'inbound',
    source: { pod: 'client', namespace: 'app', workload: 'client', ip: '127.0.0.7', port: local },
    original_destination: `127.0.0.1:${proxy.port}`,
    endpoint: `127.0.0.1:${proxy.port}`,
    destination: { pod: 'server-a', namespace: 'app', workload: 'server' },
    bytes_received: 2,
    result: 'ok'
  })
  t.equal(line.destination_service, undefined, 'no service selects this port')
  const text = await proxy.metrics.text()
  t.equal(counter(text, 'istio_tcp_connections_closed_total', { reporter: 'destination', source_workload: 'client', destination_workload: 'server', response_flags: '-' }), 1)
})

t.test('inbound from an unknown peer: source has only ip and port; a selecting Service is named', async (t) => {
  const { port: appPort } = await listen(t, '127.0.0.1', (s: Socket) => { s.end('ok') })
  const serverA = podObj({ name: 'server-a', ips: ['127.0.0.1'], labels: { app: 'server' }, deployment: 'server' })
  const routes = routesFor([serverA])
  const proxy = await startInbound(t, { routes, pod: routes.index.podByIP('127.0.0.1')!, host: '127.0.0.1', connector: () => connect({ host: '127.0.0.1', port: appPort }) })
  // The "pod port" the client dialled is the proxy's port here; a Service targets it by name.
  // A new snapshot is taken by the running handler (it reads the routes per connection).
  routes.update(parseClusterList(listText([
    podObj({ name: 'server-a', ips: ['127.0.0.1'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'http', containerPort: proxy.port }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http' }] })
  ]), 'test', 2))
  const c = await dial(proxy.port, { localAddress: '127.0.0.9' })
  const local = c.localPort
  c.end()
  t.equal((await drain(c)).data.toString(), 'ok')
  const [line] = await proxy.accessLines(1)
  t.same(line.source, { ip: '127.0.0.9', port: local })
  t.equal(line.destination_service, 'server.app')
  t.equal(counter(await proxy.metrics.text(), 'istio_tcp_connections_closed_total', { reporter: 'destination', source_workload: 'unknown', destination_service: 'server.app.svc.cluster.local' }), 1)
})
