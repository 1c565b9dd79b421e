import t from 'tap'
import { formatSpiffeId, parseSpiffeId, spiffeIdOf, spiffeIdProblem, tryParseSpiffeId, validateTrustDomain } from '../../src/identity/spiffe-id'

// spiffe://<trust-domain>/ns/<ns>/sa/<sa>: parsed, formatted and validated in one place.

t.test('parses and formats the Istio form', async (t) => {
  const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/web-frontend')
  t.same(id, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web-frontend', uri: 'spiffe://cluster.local/ns/default/sa/web-frontend' })
  t.ok(Object.isFrozen(id))
  t.equal(formatSpiffeId(id), id.uri)
  t.same(spiffeIdOf('td_1.example', 'kube-system', 'coredns.v1'), parseSpiffeId('spiffe://td_1.example/ns/kube-system/sa/coredns.v1'))
})

t.test('refuses what is not a workload ID, saying why', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['http://cluster.local/ns/a/sa/b', /scheme must be "spiffe:\/\/"/],
    ['SPIFFE://cluster.local/ns/a/sa/b', /scheme/],
    ['spiffe://Cluster.local/ns/a/sa/b', /trust domain: only lowercase/],
    ['spiffe://cluster.local:8080/ns/a/sa/b', /a port is not allowed/],
    ['spiffe://user@cluster.local/ns/a/sa/b', /userinfo/],
    ['spiffe:///ns/a/sa/b', /trust domain: empty/],
    ['spiffe://cluster.local', /the path must be/],
    ['spiffe://cluster.local/ns/a/sa/b/extra', /the path must be/],
    ['spiffe://cluster.local/ns/a/serviceaccount/b', /the path must be/],
    ['spiffe://cluster.local/ns//sa/b', /namespace "" is not/],
    ['spiffe://cluster.local/ns/A/sa/b', /namespace "A"/],
    ['spiffe://cluster.local/ns/a/sa/b_c', /service account "b_c"/],
    ['spiffe://cluster.local/ns/' + 'a'.repeat(64) + '/sa/b', /namespace/],
    ['spiffe://cluster.local/ns/a/sa/b?x=1', /query or fragment/],
    ['spiffe://cluster.local/ns/a/sa/b#f', /query or fragment/],
    ['spiffe://cluster.local/ns/a/sa/' + 'b'.repeat(2100), /longer than 2048 bytes/]
  ]
  for (const [uri, why] of cases) {
    t.throws(() => parseSpiffeId(uri), { code: 'FERRY_ERR_SPIFFE_ID', message: why }, uri.slice(0, 60))
    t.equal(tryParseSpiffeId(uri), null)
    t.not(spiffeIdProblem(uri), null)
  }
})

t.test('control characters never reach a message verbatim', async (t) => {
  t.throws(() => parseSpiffeId('spiffe://cluster.local/ns/a\n\u0007/sa/b'), { message: /namespace "a\?\?"/ })
})

t.test('trust domains', async (t) => {
  t.equal(validateTrustDomain('cluster.local'), 'cluster.local')
  t.throws(() => validateTrustDomain(''), { code: 'FERRY_ERR_SPIFFE_ID' })
  t.throws(() => validateTrustDomain('a/b'), { code: 'FERRY_ERR_SPIFFE_ID' })
})
