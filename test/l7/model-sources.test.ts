import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { clusterView } from '../../src/kubernetes/cluster-view'
import { clusterList } from '../../src/lab/cluster-file'
import { readManifests } from '../../src/lab/manifest'
import { planLab, type PlanPaths } from '../../src/lab/topology'
import { L7Table } from '../../src/l7'

// What L7 engagement reads reaches the snapshot from each source: a lab manifest (through
// the cluster file the lab writes) and the Kubernetes source (API objects through the
// same parser). Guards that Service annotations and ports' appProtocol are not dropped
// on the way: without them no Service could opt in or declare its protocol.

const PATHS: PlanPaths = { cgroup2: '/cg', netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', bpffs: '/bpf', labStateDir: '/state' }

const MANIFEST = `
apiVersion: v1
kind: Node
metadata: { name: n1 }
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: { ferry.dev/mesh: enabled, ferry.dev/l7: enabled }
---
apiVersion: v1
kind: Pod
metadata: { name: api, namespace: shop, labels: { app: api } }
spec:
  nodeName: n1
  containers:
  - name: main
    command: [node, server.js]
    ports: [{ name: rpc, containerPort: 9000 }, { name: db, containerPort: 6379 }]
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: { ferry.dev/l7: disabled, team: payments }
spec:
  selector: { app: api }
  ports:
  - { name: rpc, port: 90, targetPort: rpc, appProtocol: kubernetes.io/h2c }
  - { name: cache, port: 6379, targetPort: db, appProtocol: tcp }
`

t.test('lab manifest → cluster file → snapshot: Service annotations and appProtocol survive', async (t) => {
  let n = 0
  const spec = readManifests(['/virtual/shop.yaml'], () => MANIFEST)
  const plan = planLab(spec, { name: 'x', mesh: true, paths: PATHS, newUid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}` })
  const snap = parseClusterList(JSON.stringify(clusterList(spec, plan, 1)), 'cluster.json', 1)
  const svc = snap.services.find((s) => s.name === 'api')!
  t.same(svc.annotations, { 'ferry.dev/l7': 'disabled', team: 'payments' })
  t.same(svc.ports.map((p) => [p.name, p.appProtocol]), [['rpc', 'kubernetes.io/h2c'], ['cache', 'tcp']])
  t.same(snap.namespaces.find((ns) => ns.name === 'shop')?.labels['ferry.dev/l7'], 'enabled')
  const table = L7Table.build(snap)
  t.match(table.forService(svc, svc.ports[0]), { engaged: false, protocol: 'http2' }, 'the Service opts out over its namespace')
  const pod = snap.pods.find((p) => p.name === 'api')!
  t.match(table.forWorkload(pod, 9000, null), { engaged: true, protocol: 'http2' }, 'the pod is in an L7 namespace; the Service declares h2c on its named target port')
  t.match(table.forWorkload(pod, 6379, null), { engaged: false, protocol: 'tcp' }, 'tcp: never L7')
})

t.test('Kubernetes source: API objects → snapshot carry annotations and appProtocol', async (t) => {
  const service = {
    metadata: { name: 'api', namespace: 'shop', uid: 'u1', annotations: { 'ferry.dev/l7': 'enabled' } },
    spec: { clusterIP: '10.96.0.9', clusterIPs: ['10.96.0.9'], selector: { app: 'api' }, ports: [{ name: 'x', port: 80, targetPort: 8080, protocol: 'TCP', appProtocol: 'grpc' }] }
  }
  const { snapshot, dropped } = clusterView({ namespaces: [{ metadata: { name: 'shop' } }], localPods: [], otherPods: [], services: [service] }, 'kube').build(1)
  t.same(dropped, [])
  t.same(snapshot.services[0].annotations, { 'ferry.dev/l7': 'enabled' })
  t.equal(snapshot.services[0].ports[0].appProtocol, 'grpc')
})
