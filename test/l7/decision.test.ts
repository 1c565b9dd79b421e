import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import type { ClusterSnapshot } from '../../src/discovery/model'
import { l7ForService, l7ForWorkload, L7Table, portProtocol } from '../../src/l7'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'

// Where L7 applies and in which protocol, table by table: the switch (Service or pod
// annotation, namespace label, `disabled` winning over the namespace), the protocol
// (appProtocol, Istio's port-name prefixes, detect), `tcp` never engaged, a policy
// engaging the destination, named targetPorts. Each row fails if its rule is removed.

function cluster (items: Array<Record<string, unknown>>): ClusterSnapshot {
  return parseClusterList(listText(items), 'test', 1)
}

t.test('protocol of a Service port: appProtocol first, else the port name prefix, else detect', async (t) => {
  const rows: Array<[string | null, string | null, string]> = [
    // [appProtocol, port name, protocol]
    ['http', null, 'http1'],
    ['HTTP', null, 'http1'],
    ['http2', null, 'http2'],
    ['kubernetes.io/h2c', null, 'http2'],
    ['kubernetes.io/ws', null, 'http1'],
    ['kubernetes.io/wss', null, 'tcp'],
    ['grpc', null, 'grpc'],
    ['grpc-web', null, 'detect'],
    ['tcp', 'http-web', 'tcp'], // appProtocol wins over the name
    ['https', null, 'tcp'],
    ['tls', null, 'tcp'],
    ['mycompany.com/thing', 'http', 'detect'], // an unknown appProtocol: detect, the name is not read (as Istio)
    [null, 'http', 'http1'],
    [null, 'http-web', 'http1'],
    [null, 'HTTP-web', 'http1'],
    [null, 'http2-api', 'http2'],
    [null, 'grpc', 'grpc'],
    [null, 'grpc-api', 'grpc'],
    [null, 'grpc-web-ui', 'detect'],
    [null, 'tcp-db', 'tcp'],
    [null, 'tls-x', 'tcp'],
    [null, 'https-x', 'tcp'],
    [null, 'mongo-x', 'tcp'],
    [null, 'mysql', 'tcp'],
    [null, 'redis-cache', 'tcp'],
    [null, 'httpx', 'detect'],
    [null, 'web', 'detect'],
    [null, 'constructor', 'detect'],
    [null, null, 'detect']
  ]
  for (const [appProtocol, name, want] of rows) {
    t.equal(portProtocol({ name, appProtocol, protocol: 'TCP' }).protocol, want, `appProtocol ${String(appProtocol)}, name ${String(name)} → ${want}`)
  }
  t.equal(portProtocol({ name: 'http', appProtocol: null, protocol: 'UDP' }).protocol, 'tcp', 'a UDP port is never HTTP')
})

t.test('at the source: Service annotation, namespace label, disabled wins, tcp never engaged, invalid values ignored', async (t) => {
  const rows: Array<{ what: string, ns?: Record<string, string>, svc?: Record<string, string>, port?: Record<string, unknown>, engaged: boolean, protocol: string, reason: RegExp }> = [
    { what: 'nothing set', engaged: false, protocol: 'detect', reason: /no ferry\.dev\/l7 on service shop\/api or namespace shop/ },
    { what: 'service annotation', svc: { 'ferry.dev/l7': 'enabled' }, engaged: true, protocol: 'detect', reason: /annotation ferry\.dev\/l7=enabled on service shop\/api/ },
    { what: 'namespace label', ns: { 'ferry.dev/l7': 'enabled' }, engaged: true, protocol: 'detect', reason: /label ferry\.dev\/l7=enabled on namespace shop/ },
    { what: 'disabled on the service wins', ns: { 'ferry.dev/l7': 'enabled' }, svc: { 'ferry.dev/l7': 'disabled' }, engaged: false, protocol: 'detect', reason: /annotation ferry\.dev\/l7=disabled on service shop\/api \(over label ferry\.dev\/l7=enabled on namespace shop\)/ },
    { what: 'enabled on the service over a disabled namespace', ns: { 'ferry.dev/l7': 'disabled' }, svc: { 'ferry.dev/l7': 'enabled' }, engaged: true, protocol: 'detect', reason: /enabled on service shop\/api \(over label ferry\.dev\/l7=disabled/ },
    { what: 'invalid annotation: not set', svc: { 'ferry.dev/l7': 'yes' }, engaged: false, protocol: 'detect', reason: /no ferry\.dev\/l7/ },
    { what: 'invalid annotation falls back to the namespace', ns: { 'ferry.dev/l7': 'enabled' }, svc: { 'ferry.dev/l7': 'Enabled' }, engaged: true, protocol: 'detect', reason: /label ferry\.dev\/l7=enabled on namespace shop/ },
    { what: 'grpc appProtocol', svc: { 'ferry.dev/l7': 'enabled' }, port: { appProtocol: 'grpc' }, engaged: true, protocol: 'grpc', reason: /protocol grpc \(appProtocol "grpc"\)/ },
    { what: 'port name prefix', svc: { 'ferry.dev/l7': 'enabled' }, port: { name: 'http2-api' }, engaged: true, protocol: 'http2', reason: /port name "http2-api"/ },
    { what: 'tcp: never engaged', svc: { 'ferry.dev/l7': 'enabled' }, port: { appProtocol: 'tcp' }, engaged: false, protocol: 'tcp', reason: /appProtocol "tcp" declares a protocol that is not HTTP: L4; annotation ferry\.dev\/l7=enabled on service shop\/api does not apply to it/ },
    { what: 'redis name: never engaged', ns: { 'ferry.dev/l7': 'enabled' }, port: { name: 'redis' }, engaged: false, protocol: 'tcp', reason: /not HTTP/ },
    { what: 'protocol reported when not engaged', port: { appProtocol: 'http' }, engaged: false, protocol: 'http1', reason: /no ferry\.dev\/l7/ }
  ]
  for (const r of rows) {
    const s = cluster([
      namespaceObj('shop', r.ns ?? {}),
      serviceObj({ name: 'api', namespace: 'shop', annotations: r.svc, clusterIPs: ['10.96.0.40'], ports: [{ port: 80, ...r.port }] })
    ])
    const d = l7ForService(s.services[0], s.services[0].ports[0], s.namespaces[0])
    t.equal(d.engaged, r.engaged, `${r.what}: engaged ${String(r.engaged)}`)
    t.equal(d.protocol, r.protocol, `${r.what}: ${r.protocol}`)
    t.match(d.reason, r.reason, `${r.what}: reason`)
    t.ok(Object.isFrozen(d), `${r.what}: frozen`)
  }
  const s = cluster([namespaceObj('shop'), serviceObj({ name: 'api', namespace: 'shop', clusterIPs: ['10.96.0.40'], ports: [{ port: 80 }] })])
  t.match(l7ForService(s.services[0], s.services[0].ports[0], s.namespaces[0], 'shop/api-route'), { engaged: true, reason: /route shop\/api-route targets it/ }, 'the route seam engages')
})

t.test('at the destination: pod annotation, namespace label, disabled wins, a policy engages (even over disabled), tcp never', async (t) => {
  const rows: Array<{ what: string, ns?: Record<string, string>, pod?: Record<string, string>, policy?: string, port?: Record<string, unknown>, engaged: boolean, protocol: string, reason: RegExp }> = [
    { what: 'nothing set', engaged: false, protocol: 'detect', reason: /no ferry\.dev\/l7 on pod shop\/api-1 or namespace shop, and no AuthorizationPolicy/ },
    { what: 'pod annotation', pod: { 'ferry.dev/l7': 'enabled' }, engaged: true, protocol: 'detect', reason: /annotation ferry\.dev\/l7=enabled on pod shop\/api-1/ },
    { what: 'namespace label', ns: { 'ferry.dev/l7': 'enabled' }, engaged: true, protocol: 'detect', reason: /label ferry\.dev\/l7=enabled on namespace shop/ },
    { what: 'disabled on the pod wins', ns: { 'ferry.dev/l7': 'enabled' }, pod: { 'ferry.dev/l7': 'disabled' }, engaged: false, protocol: 'detect', reason: /disabled on pod shop\/api-1 \(over label/ },
    { what: 'an L7 policy engages', policy: 'shop/admin-only', engaged: true, protocol: 'detect', reason: /AuthorizationPolicy shop\/admin-only has L7 fields and selects it/ },
    { what: 'an L7 policy engages over disabled', pod: { 'ferry.dev/l7': 'disabled' }, policy: 'shop/admin-only', engaged: true, protocol: 'detect', reason: /over annotation ferry\.dev\/l7=disabled on pod shop\/api-1: an opt-out does not switch a policy off/ },
    { what: 'tcp: never, even with a policy', policy: 'shop/admin-only', port: { appProtocol: 'tcp' }, engaged: false, protocol: 'tcp', reason: /not HTTP: L4; AuthorizationPolicy shop\/admin-only has L7 fields and selects it: it applies as to any non-HTTP bytes/ },
    { what: 'protocol from the Service', ns: { 'ferry.dev/l7': 'enabled' }, port: { appProtocol: 'grpc' }, engaged: true, protocol: 'grpc', reason: /service shop\/api port 80: appProtocol "grpc"/ },
    { what: 'invalid pod annotation', pod: { 'ferry.dev/l7': 'on' }, engaged: false, protocol: 'detect', reason: /no ferry\.dev\/l7/ }
  ]
  for (const r of rows) {
    const s = cluster([
      namespaceObj('shop', r.ns ?? {}),
      podObj({ name: 'api-1', namespace: 'shop', labels: { app: 'api' }, annotations: r.pod, ports: [{ name: 'http', containerPort: 8080 }] }),
      serviceObj({ name: 'api', namespace: 'shop', clusterIPs: ['10.96.0.40'], ports: [{ port: 80, targetPort: 'http', ...r.port }] })
    ])
    const d = l7ForWorkload(s.pods[0], 8080, s.namespaces[0], r.policy ?? null, s.services)
    t.equal(d.engaged, r.engaged, `${r.what}: engaged ${String(r.engaged)}`)
    t.equal(d.protocol, r.protocol, `${r.what}: ${r.protocol}`)
    t.match(d.reason, r.reason, `${r.what}: reason`)
    // The table agrees with the function, row by row.
    const table = L7Table.build(s)
    t.same(table.forWorkload(s.pods[0], 8080, r.policy ?? null), d, `${r.what}: the table says the same`)
  }
})

t.test('the destination port\'s protocol: named targetPorts, several Services, disagreement, no Service', async (t) => {
  const s = cluster([
    namespaceObj('shop', { 'ferry.dev/l7': 'enabled' }),
    podObj({ name: 'a', namespace: 'shop', labels: { app: 'api', tier: 'x' }, ports: [{ name: 'rpc', containerPort: 9000 }, { name: 'web', containerPort: 8080 }, { name: 'adm', containerPort: 7000 }] }),
    podObj({ name: 'b', namespace: 'shop', labels: { app: 'api' }, ports: [{ name: 'rpc', containerPort: 9100 }] }),
    serviceObj({ name: 'api', namespace: 'shop', clusterIPs: ['10.96.0.41'], selector: { app: 'api' }, ports: [{ name: 'grpc', port: 90, targetPort: 'rpc' }, { name: 'web', port: 80, targetPort: 8080 }, { name: 'admin', port: 70, targetPort: 'adm', appProtocol: 'http' }] }),
    serviceObj({ name: 'api-h', namespace: 'shop', clusterIPs: ['None'], selector: { app: 'api' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'tcp-admin', port: 70, targetPort: 'adm' }] }),
    serviceObj({ name: 'other', namespace: 'shop', clusterIPs: ['10.96.0.42'], selector: { app: 'nothing' }, ports: [{ name: 'tcp', port: 80, targetPort: 8080 }] })
  ])
  const table = L7Table.build(s)
  const [a, b] = s.pods
  t.match(table.forWorkload(a, 9000, null), { protocol: 'grpc', reason: /service shop\/api port 90: port name "grpc"/ }, 'named targetPort "rpc" is 9000 on pod a')
  t.match(table.forWorkload(b, 9100, null), { protocol: 'grpc' }, 'and 9100 on pod b')
  t.match(table.forWorkload(a, 8080, null), { protocol: 'http1', reason: /service shop\/api-h port 80: port name "http"/ }, 'a headless Service declares too; the undeclared one does not count; a Service not selecting the pod neither')
  t.match(table.forWorkload(a, 7000, null), { protocol: 'detect', reason: /Services disagree \(service shop\/api port 70: http1, service shop\/api-h port 70: tcp\)/ }, 'disagreement: detect, naming both')
  t.match(table.forWorkload(a, 5555, null), { engaged: true, protocol: 'detect', reason: /no Service exposes this port/ }, 'a port nobody declares: detect')
  t.same(table.workloadPorts(a), [7000, 8080, 9000])
  t.equal(table.forWorkload(a, 5555, null), table.forWorkload(a, 6666, null), 'other ports share one decision (nothing allocated per connection)')
  t.equal(table.forWorkload(a, 9000, 'shop/p'), table.forWorkload(a, 9000, 'shop/p'), 'a policy decision is made once and kept')
  t.equal(table.forService(s.services[0], s.services[0].ports[0]), table.forService(s.services[0], s.services[0].ports[0]), 'service decisions are precomputed')
  t.same(table.warnings, [])
})

t.test('invalid values: listed once per table, each naming the object; other tables for other nodes skip their pods', async (t) => {
  const s = cluster([
    namespaceObj('shop', { 'ferry.dev/l7': 'true' }),
    podObj({ name: 'a', namespace: 'shop', node: 'n1', annotations: { 'ferry.dev/l7': 'yes' } }),
    podObj({ name: 'b', namespace: 'shop', node: 'n2', annotations: { 'ferry.dev/l7': 'nope' } }),
    serviceObj({ name: 'api', namespace: 'shop', annotations: { 'ferry.dev/l7': 'maybe' }, clusterIPs: ['10.96.0.41'], ports: [{ name: 'a', port: 80 }, { name: 'b', port: 81 }] })
  ])
  const table = L7Table.build(s, { node: 'n1' })
  t.same([...table.warnings].sort(), [
    'namespace shop: label ferry.dev/l7="true" is not "enabled" or "disabled": ignored (read as not set)',
    'pod shop/a: annotation ferry.dev/l7="yes" is not "enabled" or "disabled": ignored (read as not set)',
    'service shop/api: annotation ferry.dev/l7="maybe" is not "enabled" or "disabled": ignored (read as not set)'
  ])
  t.same(table.workloadPorts(s.pods[1]), [], 'pod b (node n2) has no entry on n1')
  t.match(table.forWorkload(s.pods[1], 80, null), { engaged: false }, 'but is still answered')
})
