import t from 'tap'
import type { Socket } from 'node:net'
import { NodeLimits } from '../../src/limits/node-limits'
import { l4OutlierLookup } from '../../src/limits/l4-outliers'
import type { OutlierDetection } from '../../src/routing/model'
import { namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { dial, drain } from '../helpers/net'
import { listen, podNamed, routesFor, startOutbound, type Teardown } from '../proxy/harness'

// Outlier detection for L4 connections, on the real outbound proxy over loopback: with a
// DestinationRule's outlierDetection on the Service, connect failures count toward
// ejecting the endpoint, and an ejected endpoint is skipped for new connections. Without
// one, connections keep going round robin to the dead endpoint.

const policy: OutlierDetection = {
  consecutive5xxErrors: null,
  consecutiveGatewayErrors: 2,
  consecutiveLocalOriginFailures: null,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionPercent: 100,
  minHealthPercent: 0
}

async function setup (t: Teardown): Promise<{ routes: ReturnType<typeof routesFor>, port: number }> {
  const { port } = await listen(t, '127.0.0.2', (s: Socket) => {
    s.end('alive\n')
    s.on('error', () => {})
  })
  // 127.0.0.3 on the same port: nothing listens there (refused).
  const routes = routesFor([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5'], labels: { app: 'client' } }),
    podObj({ name: 'alive', ips: ['127.0.0.2'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'tcp', containerPort: port }] }),
    podObj({ name: 'dead', ips: ['127.0.0.3'], labels: { app: 'server' }, deployment: 'server', ports: [{ name: 'tcp', containerPort: port }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'tcp' }] })
  ])
  return { routes, port }
}

async function outcomes (port: number, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    try {
      const c = await dial(port)
      c.end()
      const r = await drain(c)
      out.push(r.data.toString() === 'alive\n' ? 'ok' : 'failed')
    } catch {
      out.push('failed')
    }
  }
  return out
}

t.test('without outlier detection, every other connection goes to the dead endpoint', async (t) => {
  const { routes } = await setup(t)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 80 }) })
  const r = await outcomes(proxy.port, 8)
  t.equal(r.filter((x) => x === 'failed').length, 4, r.join(' '))
})

t.test('connect failures eject the dead endpoint; new connections skip it; another view of the node\'s memory sees the ejection', async (t) => {
  const { routes } = await setup(t)
  const memory = NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })
  routes.setOutlierDetection(l4OutlierLookup(new NodeLimits(memory), new Map([['app/server:80', policy]])))
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 80 }) })
  const first = await outcomes(proxy.port, 4)
  t.equal(first.filter((x) => x === 'failed').length, 2, `two connect failures, then ejected: ${first.join(' ')}`)
  const after = await outcomes(proxy.port, 20)
  t.same(after.filter((x) => x === 'failed'), [], 'every new connection skips the ejected endpoint')
  const tracker = new NodeLimits(memory).outliersFor('app/server:80', policy, () => 2)
  t.ok(tracker.ejected('127.0.0.3|' + String(routes.index.lookup('10.96.0.10', 80)?.endpoints[0].port), Date.now()), 'ejected in the node\'s memory')
})

t.test('no policy for this Service: picks are the balancer\'s alone', async (t) => {
  const { routes } = await setup(t)
  routes.setOutlierDetection(l4OutlierLookup(new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })), new Map([['app/other:80', policy]])))
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 80 }) })
  const r = await outcomes(proxy.port, 8)
  t.equal(r.filter((x) => x === 'failed').length, 4)
  t.equal(l4OutlierLookup(new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })), new Map()), null, 'no policy at all: no lookup')
})
