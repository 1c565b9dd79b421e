import t from 'tap'
import pino from 'pino'
import type { ClusterSnapshot } from '../../src/discovery'
import type { FerryError } from '../../src/errors'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { KubernetesDiscoverySource } from '../../src/kubernetes/source'
import { ListWatchServer } from '../../src/lab/api-server'
import { L7Table } from '../../src/l7'
import { namespace, service } from '../kubernetes/objects'
import { waitFor } from '../helpers/wait'

// NOT A REAL CLUSTER: the `kubernetes` discovery source (the official client) against the
// lab's list + watch server (src/lab/api-server.ts), as test/kubernetes/source.test.ts
// explains. Guards that a change to nothing but a Service's ferry.dev/l7 annotation or a
// port's appProtocol is a new snapshot (the source compares digests of what it parsed:
// fields the model dropped would never reach the workers).

const TOKEN = 'l7-kube-token'

t.before(async () => { await loadKubernetesClient() })

t.test('an annotation or appProtocol change alone publishes a new snapshot that carries it', async (t) => {
  const api = new ListWatchServer(TOKEN)
  await api.start()
  api.apply('namespaces', namespace('shop', { 'ferry.dev/mesh': 'enabled' }))
  const base = service({ name: 'api', namespace: 'shop', clusterIP: '10.96.0.20', selector: { app: 'api' }, ports: [{ name: 'rpc', port: 90, targetPort: 9000 }] })
  api.apply('services', base)
  const snapshots: ClusterSnapshot[] = []
  const errors: FerryError[] = []
  const source = new KubernetesDiscoverySource({ node: 'node-1', log: pino({ level: 'silent' }), kubeconfig: { server: api.url, token: TOKEN }, debounceMs: 5 })
  t.teardown(async () => { source.close(); await api.close() })
  source.start({ onSnapshot: (s) => { snapshots.push(s) }, onError: (e) => { errors.push(e) } })
  await waitFor(() => snapshots.length === 1, { what: 'the first snapshot' })
  const first = snapshots[0].services[0]
  t.match(L7Table.build(snapshots[0]).forService(first, first.ports[0]), { engaged: false, protocol: 'detect' })

  const annotated = { ...base, metadata: { ...(base.metadata as object), annotations: { 'ferry.dev/l7': 'enabled' } } }
  api.apply('services', annotated)
  await waitFor(() => snapshots.length === 2, { what: 'a snapshot for the annotation' })
  t.same(snapshots[1].services[0].annotations, { 'ferry.dev/l7': 'enabled' })

  const spec = (base.spec as { ports: Array<Record<string, unknown>> })
  api.apply('services', { ...annotated, spec: { ...spec, ports: [{ ...spec.ports[0], appProtocol: 'grpc' }] } })
  await waitFor(() => snapshots.length === 3, { what: 'a snapshot for the appProtocol' })
  const third = snapshots[2].services[0]
  t.equal(third.ports[0].appProtocol, 'grpc')
  t.match(L7Table.build(snapshots[2]).forService(third, third.ports[0]), { engaged: true, protocol: 'grpc' })
  t.same(errors, [])
})
