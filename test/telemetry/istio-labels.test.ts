import t from 'tap'
import { CONNECTION_LABELS, connectionResponseFlags, IstioLabeler, labelObject, workloadMeta } from '../../src/telemetry/istio-labels'
import { CART_B, CART_ID, conn, PODS, WEB_ID } from './request-records'

// Istio's label values, as Istio's docs and pkg/model define them: the client side
// reports "source" with connection_security_policy "unknown"; canonical service and
// revision fall back through Istio's label list; "unknown" where nothing is known.

const labeler = new IstioLabeler({ clusterName: 'east', pods: PODS, principalOf: (p) => `spiffe://cluster.local/ns/${p.namespace}/sa/${p.workload}` })
const labels = (values: string[]): Record<string, string> => labelObject(CONNECTION_LABELS, values)

t.test('a source record: the client side\'s labels, Istio\'s derivations', async (t) => {
  const l = labels(labeler.connectionValues(conn(), 'source', 'http', '-'))
  t.same(l, {
    reporter: 'source',
    source_workload: 'web',
    source_workload_namespace: 'shop',
    source_principal: WEB_ID,
    source_app: 'web',
    source_version: 'v1',
    source_canonical_service: 'web',
    source_canonical_revision: 'v1',
    source_cluster: 'east',
    destination_workload: 'cart',
    destination_workload_namespace: 'shop',
    destination_principal: CART_ID,
    destination_app: 'cart',
    destination_version: '2.0',
    destination_canonical_service: 'cart',
    destination_canonical_revision: '2.0',
    destination_cluster: 'east',
    destination_service: 'cart.shop.svc.cluster.local',
    destination_service_name: 'cart',
    destination_service_namespace: 'shop',
    request_protocol: 'http',
    response_flags: '-',
    connection_security_policy: 'unknown'
  })
})

t.test('destination_service is the FQDN in the cluster\'s DNS domain (--cluster-domain)', async (t) => {
  const other = new IstioLabeler({ clusterDomain: 'corp.internal', pods: PODS })
  t.equal(labels(other.connectionValues(conn(), 'source', 'http', '-')).destination_service, 'cart.shop.svc.corp.internal')
  t.equal(labels(new IstioLabeler({ pods: PODS }).connectionValues(conn(), 'source', 'http', '-')).destination_service, 'cart.shop.svc.cluster.local', 'default cluster.local')
})

t.test('a destination record: mutual_tls through the tunnel, none in plaintext', async (t) => {
  t.equal(labels(labeler.connectionValues(conn({ direction: 'inbound' }), 'destination', 'tcp', '-')).connection_security_policy, 'mutual_tls')
  t.equal(labels(labeler.connectionValues(conn({ direction: 'inbound', mtls: false }), 'destination', 'tcp', '-')).connection_security_policy, 'none')
})

t.test('unknown peers and no Service: "unknown", as Istio writes it', async (t) => {
  const r = conn({ source: { pod: null, namespace: null, workload: null, ip: '192.0.2.1', port: 1 }, sourcePrincipal: null, service: null, destination: null, destinationPrincipal: null })
  const l = labels(labeler.connectionValues(r, 'destination', 'tcp', 'NR'))
  for (const k of ['source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'source_canonical_service', 'source_canonical_revision', 'source_cluster',
    'destination_workload', 'destination_principal', 'destination_canonical_service', 'destination_cluster', 'destination_service', 'destination_service_name', 'destination_service_namespace'] as const) {
    t.equal(l[k], 'unknown', k)
  }
  t.equal(l.response_flags, 'NR')
})

t.test('canonical service and revision: Istio\'s label order, then the workload name and "latest"', async (t) => {
  t.same(workloadMeta(CART_B.labels, 'cart'), { app: 'cart', version: 'v2', canonicalService: 'cart-svc', canonicalRevision: 'canary' })
  t.same(workloadMeta({}, 'batch'), { app: 'unknown', version: 'unknown', canonicalService: 'batch', canonicalRevision: 'latest' })
  t.same(workloadMeta(undefined, 'gone'), { app: 'unknown', version: 'unknown', canonicalService: 'gone', canonicalRevision: 'latest' }, 'a pod no longer in the snapshot')
  t.same(workloadMeta({ app: 'x', 'app.kubernetes.io/name': 'y' }, 'w'), { app: 'x', version: 'unknown', canonicalService: 'y', canonicalRevision: 'latest' }, 'app.kubernetes.io/name before app for the canonical name')
  t.equal(workloadMeta(CART_B.labels, 'cart'), workloadMeta(CART_B.labels, 'cart'), 'derived once per labels object')
})

t.test('a request balanced to another endpoint than the connection\'s: that pod is its destination', async (t) => {
  t.equal(labeler.requestDestination(conn(), '10.244.1.7'), null, 'the connection\'s own destination')
  const d = labeler.requestDestination(conn(), '10.244.1.8')
  t.equal(d?.pod.name, 'cart-b')
  t.equal(d?.principal, 'spiffe://cluster.local/ns/shop/sa/cart')
  const l = labels(labeler.connectionValues(conn(), 'source', 'http', '-', d ?? null))
  t.match(l, { destination_workload: 'cart', destination_canonical_service: 'cart-svc', destination_canonical_revision: 'canary', destination_version: 'v2' })
  t.equal(labeler.requestDestination(conn(), '192.0.2.9'), null, 'not a pod: the connection\'s')
})

t.test('without pod labels or cluster name: Istio\'s defaults', async (t) => {
  const l = labels(new IstioLabeler().connectionValues(conn(), 'source', 'tcp', '-'))
  t.match(l, { source_cluster: 'Kubernetes', source_app: 'unknown', source_canonical_service: 'web', source_canonical_revision: 'latest' })
})

t.test('TCP response flags: Envoy\'s flag for each Ferry result', async (t) => {
  t.same(['ok', 'connect_error', 'connect_timeout', 'no_endpoints', 'no_original_dst', 'denied_plaintext', 'reset', 'denied', null].map((r) => connectionResponseFlags(r as any)),
    ['-', 'UF', 'UF', 'UH', 'NR', 'NR', 'UC', 'RBAC', '-'])
})
