import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { isFerryError } from '../../src/errors'
import { list, listText, namespaceObj, podObj, sampleCluster, serviceObj } from './fixture'

t.test('a valid List becomes a frozen snapshot with the fields the mesh needs', async (t) => {
  const s = parseClusterList(listText(sampleCluster()), '/tmp/cluster.json', 1)
  t.equal(s.generation, 1)
  t.same(s.nodes.map((n) => n.name), ['n1'])
  t.same(s.namespaces.map((n) => [n.name, n.labels]), [['app', { 'ferry.dev/mesh': 'enabled' }]])
  const a = s.pods.find((p) => p.name === 'server-a')!
  t.same(a.podIPs, ['10.244.0.10', 'fd00:244::a'])
  t.same(a.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }])
  t.equal(a.workload, 'server')
  t.equal(a.serviceAccountName, 'server-a')
  t.equal(a.nodeName, 'n1')
  const svc = s.services[0]
  t.same(svc.clusterIPs, ['10.96.0.10', 'fd00:96::a'])
  t.same(svc.ports, [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP', appProtocol: null }])
  t.same(svc.annotations, {}, 'no annotations: an empty map')
  t.ok(Object.isFrozen(s) && Object.isFrozen(s.pods) && Object.isFrozen(a) && Object.isFrozen(a.labels) && Object.isFrozen(svc.ports[0]), 'deeply frozen')
})

// Guards the fields L7 engagement reads (src/l7/): without them every Service would be
// undeclared and never opted in.
t.test('a Service carries its annotations and each port its appProtocol (null when absent or empty)', async (t) => {
  const svc = serviceObj({
    name: 'api',
    annotations: { 'ferry.dev/l7': 'enabled', other: 'x' },
    clusterIPs: ['10.96.0.30'],
    ports: [{ name: 'grpc', port: 9000, appProtocol: 'grpc' }, { name: 'h2', port: 9001, appProtocol: 'kubernetes.io/h2c' }, { name: 'plain', port: 9002 }, { name: 'empty', port: 9003, appProtocol: '' }]
  })
  const s = parseClusterList(listText([svc]), 'f', 1)
  t.same(s.services[0].annotations, { 'ferry.dev/l7': 'enabled', other: 'x' })
  t.same(s.services[0].ports.map((p) => p.appProtocol), ['grpc', 'kubernetes.io/h2c', null, null])
  t.ok(Object.isFrozen(s.services[0].annotations), 'frozen')
  const bad = serviceObj({ name: 'api', clusterIPs: ['10.96.0.30'], ports: [{ port: 9000, appProtocol: 7 as unknown as string }] })
  t.throws(() => parseClusterList(listText([bad]), 'f', 1), /spec\.ports\[0\]\.appProtocol: must be string/, 'a non-string appProtocol is refused, naming the field')
})

t.test('podIP is used when podIPs is absent; clusterIP when clusterIPs is; IPv6 is canonicalised', async (t) => {
  const pod = podObj({ name: 'p' }) as any
  pod.status = { podIP: '10.0.0.1' }
  const svc = serviceObj({ name: 's', clusterIPs: ['FD00:96:0:0::1'], ports: [{ port: 80 }] }) as any
  delete svc.spec.clusterIPs
  const s = parseClusterList(listText([pod, svc]), 'f', 1)
  t.same(s.pods[0].podIPs, ['10.0.0.1'])
  t.same(s.services[0].clusterIPs, ['fd00:96::1'])
  t.equal(s.services[0].ports[0].targetPort, 80, 'targetPort defaults to port')
})

t.test('headless services have no VIPs; selector-less services have a null selector', async (t) => {
  const s = parseClusterList(listText([serviceObj({ name: 'h', clusterIPs: ['None'], selector: null, ports: [{ port: 80 }] })]), 'f', 1)
  t.same(s.services[0].clusterIPs, [])
  t.equal(s.services[0].selector, null)
})

t.test('workload name: Istio\'s, from the controller owner (a ReplicaSet\'s Deployment), not from labels; a bare pod\'s own name', async (t) => {
  const p1 = podObj({ name: 'a-1', labels: { 'app.kubernetes.io/name': 'alpha', app: 'x' } })
  const p2 = podObj({ name: 'web-7d9f8c6b5d-x2x4q', labels: { app: 'frontend', 'pod-template-hash': '7d9f8c6b5d' } }) as any
  p2.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8c6b5d', uid: 'rs', controller: true }]
  const s = parseClusterList(listText([p1, p2]), 'f', 1)
  t.same(s.pods.map((p) => p.workload), ['a-1', 'web'], 'labels name the canonical service, not the workload')
})

t.test('objects of other kinds are skipped', async (t) => {
  const s = parseClusterList(listText([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }, namespaceObj('x')]), 'f', 1)
  t.equal(s.namespaces.length, 1)
})

t.test('probe ports: numbers, named ports of the container, numeric strings, every kind and container; exec probes name none', async (t) => {
  const pod = podObj({
    name: 'p',
    ports: [{ name: 'http', containerPort: 8080 }, { name: 'admin', containerPort: 9000 }],
    probes: {
      readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5 },
      livenessProbe: { tcpSocket: { port: 7070 } },
      startupProbe: { grpc: { port: 9090 } }
    }
  }) as any
  pod.spec.containers.push({ name: 'second', ports: [{ name: 'metrics', containerPort: 9100 }], readinessProbe: { httpGet: { port: '9200' } }, livenessProbe: { exec: { command: ['true'] } } })
  pod.spec.containers.push({ name: 'third', readinessProbe: { tcpSocket: { port: 'http' } } })
  pod.spec.initContainers = [{ name: 'sidecar', restartPolicy: 'Always', ports: [{ name: 'side', containerPort: 15000 }], startupProbe: { tcpSocket: { port: 'side' } } }]
  const [p] = parseClusterList(listText([pod]), 'f', 1).pods
  t.same(p.probePorts, [7070, 8080, 9090, 9200, 15000], 'sorted; "http" resolved against its own container; "9200" read as a number')
  t.notOk(p.probePorts.includes(9000), 'a port no probe names is not a probe port')
  // "http" in the third container names none of its ports: the kubelet's probe fails anyway.
  const exec = parseClusterList(listText([podObj({ name: 'e', probes: { livenessProbe: { exec: { command: ['true'] } } } })]), 'f', 1).pods[0]
  t.same(exec.probePorts, [], 'exec probes never touch the network')
  t.same(parseClusterList(listText([podObj({ name: 'none' })]), 'f', 1).pods[0].probePorts, [], 'no probes')
  t.throws(() => parseClusterList(listText([podObj({ name: 'bad', probes: { readinessProbe: { tcpSocket: { port: 0 } } } })]), 'f', 1),
    /field spec\.containers\[0\]\.readinessProbe\.tcpSocket\.port: must be >= 1/)
})

t.test('readiness: the Ready condition; no conditions at all is ready; terminating is not', async (t) => {
  const pods = parseClusterList(listText([
    podObj({ name: 'ready', ready: true }),
    podObj({ name: 'not-ready', ready: false }),
    podObj({ name: 'hand-written' }),
    podObj({ name: 'terminating', ready: true, deletionTimestamp: '2026-12-01T00:00:00Z' })
  ]), 'f', 1).pods
  t.same(Object.fromEntries(pods.map((p) => [p.name, p.ready])), { ready: true, 'not-ready': false, 'hand-written': true, terminating: false })
  const noReady = podObj({ name: 'scheduled-only' }) as any
  noReady.status.conditions = [{ type: 'PodScheduled', status: 'True' }]
  t.equal(parseClusterList(listText([noReady]), 'f', 1).pods[0].ready, false, 'conditions without Ready: not ready')
  const unknown = podObj({ name: 'unknown' }) as any
  unknown.status.conditions = [{ type: 'Ready', status: 'Unknown' }]
  t.equal(parseClusterList(listText([unknown]), 'f', 1).pods[0].ready, false, 'Ready Unknown: not ready')
})

t.test('errors name the file, the object and the field', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{"kind":', /^\/x\/c\.json: not valid JSON/],
    ['not a List', JSON.stringify({ apiVersion: 'v1', kind: 'Pod', items: [] }), /the List: field kind: must be equal to constant/],
    ['no items', JSON.stringify({ apiVersion: 'v1', kind: 'List' }), /the List: field items: is required/],
    ['pod without uid', (() => { const p = podObj({ name: 'p1' }) as any; delete p.metadata.uid; return JSON.stringify(list([p])) })(), /Pod app\/p1 \(items\[0\]\): field metadata\.uid: is required/],
    ['bad containerPort', JSON.stringify(list([namespaceObj('a'), podObj({ name: 'p2', ports: [{ name: 'http', containerPort: 70000 }] })])), /Pod app\/p2 \(items\[1\]\): field spec\.containers\[0\]\.ports\[0\]\.containerPort: must be <= 65535/],
    ['bad pod IP', JSON.stringify(list([podObj({ name: 'p3', ips: ['10.0.0.300'] })])), /Pod app\/p3 \(items\[0\]\): field status\.podIPs\[0\]\.ip: "10\.0\.0\.300" is not an IP address/],
    ['bad cluster IP', JSON.stringify(list([serviceObj({ name: 's1', clusterIPs: ['10.96.0.1', 'nope'], ports: [{ port: 80 }] })])), /Service app\/s1 \(items\[0\]\): field spec\.clusterIPs\[1\]: "nope" is not an IP address/],
    ['bad service port', JSON.stringify(list([serviceObj({ name: 's2', clusterIPs: ['10.96.0.2'], ports: [{ port: 0 }] })])), /Service app\/s2 \(items\[0\]\): field spec\.ports\[0\]\.port: must be >= 1/],
    ['label not a string', JSON.stringify(list([namespaceObj('n', { a: 1 as unknown as string })])), /Namespace n \(items\[0\]\): field metadata\.labels\.a: must be string/],
    ['duplicate uid', JSON.stringify(list([podObj({ name: 'a', uid: 'u1' }), podObj({ name: 'b', uid: 'u1' })])), /Pod app\/b \(items\[1\]\): field metadata\.uid: duplicate uid u1/]
  ]
  for (const [what, text, re] of cases) {
    try {
      parseClusterList(text as string, '/x/c.json', 1)
      t.fail(`${what}: accepted`)
    } catch (err) {
      t.ok(isFerryError(err, 'FERRY_ERR_CONFIG'), `${what}: FERRY_ERR_CONFIG`)
      t.match((err as Error).message, re, what)
    }
  }
})
