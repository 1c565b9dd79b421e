import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { ServiceIndex } from '../../src/discovery/service-index'
import { listText, namespaceObj, podObj, sampleCluster, serviceObj } from './fixture'

function index (items: Array<Record<string, unknown>>): ServiceIndex {
  return ServiceIndex.build(parseClusterList(listText(items), 'f', 7))
}

t.test('a VIP:port resolves to endpoints with the named targetPort resolved per pod', async (t) => {
  const idx = index(sampleCluster())
  const e = idx.lookup('10.96.0.10', 80)!
  t.ok(e, 'v4 VIP found')
  t.equal(e.serviceName, 'server.app')
  t.equal(e.family, 4)
  t.same(e.endpoints.map((x) => [x.address, x.port, x.pod.name]), [['10.244.0.10', 8080, 'server-a'], ['10.244.0.11', 9090, 'server-b']])
  t.equal(idx.lookup('10.96.0.10', 81), undefined, 'other port: no service')
  t.equal(idx.lookup('10.96.0.11', 80), undefined, 'other IP: no service')
  t.equal(idx.generation, 7)
})

t.test('the IPv6 VIP gets IPv6 endpoints; lookups accept any spelling and v4-mapped addresses', async (t) => {
  const idx = index(sampleCluster())
  const e6 = idx.lookup('FD00:96:0::A', 80)!
  t.equal(e6.family, 6)
  t.same(e6.endpoints.map((x) => x.address), ['fd00:244::a', 'fd00:244::b'])
  t.not(e6.key, idx.lookup('10.96.0.10', 80)!.key, 'one balancer key per family')
  t.equal(idx.lookup('::ffff:10.96.0.10', 80)?.serviceName, 'server.app')
})

t.test('pods without an IP of the VIP family, without the named port, of another namespace, or terminated are not endpoints', async (t) => {
  const idx = index([
    podObj({ name: 'v4only', ips: ['10.244.0.20'], labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 80 }] }),
    podObj({ name: 'noname', ips: ['10.244.0.21', 'fd00::21'], labels: { app: 'web' }, ports: [{ name: 'grpc', containerPort: 81 }] }),
    podObj({ name: 'other-ns', namespace: 'other', ips: ['10.244.0.22'], labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 80 }] }),
    podObj({ name: 'done', ips: ['10.244.0.23'], labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 80 }], phase: 'Succeeded' }),
    podObj({ name: 'extra-label', ips: ['10.244.0.24'], labels: { app: 'web', tier: 'x' }, ports: [{ name: 'http', containerPort: 80 }] }),
    serviceObj({ name: 'web', clusterIPs: ['10.96.1.1', 'fd00:96::1'], selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }, { port: 81, targetPort: 8081 }] })
  ])
  t.same(idx.lookup('10.96.1.1', 80)!.endpoints.map((e) => e.pod.name), ['v4only', 'extra-label'], 'named port: only pods that declare it')
  t.same(idx.lookup('10.96.1.1', 81)!.endpoints.map((e) => `${e.pod.name}:${e.port}`), ['v4only:8081', 'noname:8081', 'extra-label:8081'], 'numeric targetPort: every selected pod')
  t.same(idx.lookup('fd00:96::1', 80)!.endpoints, [], 'no v6 pod declares http')
  t.same(idx.lookup('fd00:96::1', 81)!.endpoints.map((e) => e.address), ['fd00::21'])
})

t.test('pods that are not ready are not endpoints until they are; publishNotReadyAddresses keeps them', async (t) => {
  const cluster = (aReady: boolean, bReady: boolean): Array<Record<string, unknown>> => [
    podObj({ name: 'a', ips: ['10.244.0.40'], labels: { app: 'api' }, ready: aReady }),
    podObj({ name: 'b', ips: ['10.244.0.41'], labels: { app: 'api' }, ready: bReady }),
    podObj({ name: 'gone', ips: ['10.244.0.42'], labels: { app: 'api' }, ready: true, deletionTimestamp: '2026-12-01T00:00:00Z' }),
    serviceObj({ name: 'api', clusterIPs: ['10.96.3.1'], ports: [{ port: 80, targetPort: 8080 }] }),
    serviceObj({ name: 'peers', clusterIPs: ['10.96.3.2'], selector: { app: 'api' }, ports: [{ port: 80, targetPort: 8080 }], publishNotReadyAddresses: true })
  ]
  const names = (idx: ServiceIndex, vip: string): string[] => idx.lookup(vip, 80)!.endpoints.map((e) => e.pod.name)
  t.same(names(index(cluster(true, false)), '10.96.3.1'), ['a'], 'b is not ready, "gone" is terminating')
  t.same(names(index(cluster(false, false)), '10.96.3.1'), [], 'none ready: no endpoints')
  t.same(names(index(cluster(true, true)), '10.96.3.1'), ['a', 'b'], 'ready again: back')
  t.same(names(index(cluster(false, false)), '10.96.3.2'), ['a', 'b', 'gone'], 'publishNotReadyAddresses: every selected pod')
  const idx = index(cluster(true, false))
  t.equal(idx.serviceForEndpoint('10.244.0.41', 8080)?.serviceName, 'api.app', 'a pod that is not ready is still named as the service\'s')
  t.equal(idx.podByIP('10.244.0.41')?.name, 'b', 'and still known by its IP')
})

t.test('selector-less and UDP service ports have no TCP endpoints; a selector needs every label', async (t) => {
  const idx = index([
    podObj({ name: 'p', ips: ['10.244.0.30'], labels: { app: 'db', role: 'primary' } }),
    serviceObj({ name: 'manual', clusterIPs: ['10.96.2.1'], selector: null, ports: [{ port: 5432 }] }),
    serviceObj({ name: 'dns', clusterIPs: ['10.96.2.2'], selector: { app: 'db' }, ports: [{ port: 53, protocol: 'UDP' }] }),
    serviceObj({ name: 'replica', clusterIPs: ['10.96.2.3'], selector: { app: 'db', role: 'replica' }, ports: [{ port: 5432 }] })
  ])
  t.same(idx.lookup('10.96.2.1', 5432)!.endpoints, [])
  t.equal(idx.lookup('10.96.2.2', 53), undefined, 'UDP not indexed')
  t.same(idx.lookup('10.96.2.3', 5432)!.endpoints, [])
})

t.test('pod IP → pod, both families; serviceForEndpoint names the service of a pod port', async (t) => {
  const idx = index([namespaceObj('app'), ...sampleCluster().slice(2)])
  t.equal(idx.podByIP('10.244.0.5')?.name, 'client')
  t.equal(idx.podByIP('fd00:244:0::b')?.name, 'server-b')
  t.equal(idx.podByIP('10.244.9.9'), undefined)
  t.equal(idx.podByName('app', 'server-b'), idx.podByIP('fd00:244:0::b'), 'by namespace and name too (telemetry reads its labels)')
  t.equal(idx.podByName('other', 'server-b'), undefined)
  t.equal(idx.serviceForEndpoint('10.244.0.11', 9090)?.serviceName, 'server.app')
  t.equal(idx.serviceForEndpoint('10.244.0.11', 8080), undefined)
  t.same(idx.namespace('app')?.labels, {})
})
