import t from 'tap'
import { parse } from 'yaml'
import { ConfigAdmission, admitDocuments } from '../../src/resources/admission'
import { formatIssue } from '../../src/resources/issues'
import type { ObjectReport } from '../../src/resources/reports'
import type { ConfigSnapshot } from '../../src/resources/snapshot'

// The traffic-management kinds go through the same validated model as the policies: the
// specifications' own examples are accepted as written (typed, frozen, in their snapshot
// field); an unknown field, a wrong type or a field Ferry does not carry out refuses the
// object, naming file, line, object and field; a refused new version leaves the previous
// good one in force, and every other object keeps working.

const FILE = '/config/traffic.yaml'

function admit (text: string, a: ConfigAdmission = new ConfigAdmission(), path = FILE): ConfigSnapshot {
  return a.admit([{ path, text }], { origin: '/config', generation: 1 })
}

function report (s: ConfigSnapshot, object: string): ObjectReport {
  const r = s.objects.find((o) => o.object === object)
  if (r === undefined) throw new Error(`no report of ${object}: ${s.objects.map((o) => o.object).join(', ')}`)
  return r
}

function issues (s: ConfigSnapshot, object: string): string[] {
  return report(s, object).issues.map(formatIssue)
}

// Gateway API's GAMMA canary (a producer route on a Service, weighted backends), with
// the filters, timeouts and experimental retry of the specification.
const HTTP_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews-canary
  namespace: bookinfo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /reviews
      headers:
      - name: end-user
        value: jason
      queryParams:
      - type: RegularExpression
        name: v
        value: "^[0-9]+$"
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: x-canary
          value: "1"
        remove: ["x-debug"]
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /v2
    backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
    timeouts:
      request: 10s
      backendRequest: 2s
    retry:
      codes: [500, 503]
      attempts: 2
      backoff: 100ms
`

// Gateway API's timeout example (v1beta1), its namespace written.
const HTTP_ROUTE_V1BETA1 = `apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata:
  name: timeout-example
  namespace: default
spec:
  parentRefs:
  - name: example-gateway
  hostnames:
  - "timeout.example.com"
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /timeout
    backendRefs:
    - name: timeout-svc
      port: 8080
    timeouts:
      request: 10s
      backendRequest: 2s
`

const GRPC_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: foo-route
  namespace: default
spec:
  parentRefs:
  - kind: Service
    name: foo
  rules:
  - matches:
    - method:
        service: com.example.User
        method: Login
    - headers:
      - type: Exact
        name: magic
        value: foo
    backendRefs:
    - name: foo-v1
      port: 50051
      weight: 3
    - name: foo-v2
      port: 50051
      weight: 1
`

// Istio's reviews-route example (VirtualService reference), its namespace written.
const VIRTUAL_SERVICE = (apiVersion: string): string => `apiVersion: ${apiVersion}
kind: VirtualService
metadata:
  name: reviews-route
  namespace: prod
spec:
  hosts:
  - reviews.prod.svc.cluster.local
  http:
  - name: "reviews-v2-routes"
    match:
    - uri:
        prefix: "/wpcatalog"
    - uri:
        prefix: "/consumercatalog"
    rewrite:
      uri: "/newcatalog"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v2
  - name: "reviews-v1-route"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v1
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream
    fault:
      delay:
        percentage:
          value: 0.1
        fixedDelay: 5s
      abort:
        percentage:
          value: 10
        grpcStatus: UNAVAILABLE
    timeout: 10s
    mirror:
      host: reviews.prod.svc.cluster.local
      subset: v3
    mirrorPercentage:
      value: 50.0
`

// Istio's bookinfo-ratings example (DestinationRule reference), its namespace written.
const DESTINATION_RULE = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bookinfo-ratings
  namespace: prod
spec:
  host: ratings.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
      http:
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
  subsets:
  - name: testversion
    labels:
      version: v3
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie:
            name: user
            ttl: 0s
`

const RATE_LIMIT = `apiVersion: security.ferry.dev/v1alpha1
kind: RateLimit
metadata:
  name: reviews
  namespace: bookinfo
spec:
  targetRefs:
  - kind: Service
    name: reviews
  limit:
    requests: 100
    per: second
    burst: 20
`

t.test('the specifications\' examples are accepted as written, in their snapshot fields', async (t) => {
  const docs = [HTTP_ROUTE, HTTP_ROUTE_V1BETA1, GRPC_ROUTE, VIRTUAL_SERVICE('networking.istio.io/v1'), DESTINATION_RULE, RATE_LIMIT]
  const s = admit(docs.join('---\n'))
  t.same(s.objects.map((o) => [o.object, o.state, o.issues.map(formatIssue)]), [
    ['HTTPRoute bookinfo/reviews-canary', 'accepted', []],
    ['HTTPRoute default/timeout-example', 'accepted', []],
    ['GRPCRoute default/foo-route', 'accepted', []],
    ['VirtualService prod/reviews-route', 'accepted', []],
    ['DestinationRule prod/bookinfo-ratings', 'accepted', []],
    ['RateLimit bookinfo/reviews', 'accepted', []]
  ])
  t.same(s.httpRoutes.map((r) => r.ref), ['bookinfo/reviews-canary', 'default/timeout-example'], 'sorted by namespace, then name')
  t.same(s.grpcRoutes.map((r) => r.ref), ['default/foo-route'])
  t.same(s.virtualServices.map((r) => r.ref), ['prod/reviews-route'])
  t.same(s.destinationRules.map((r) => r.ref), ['prod/bookinfo-ratings'])
  t.same(s.rateLimits.map((r) => r.ref), ['bookinfo/reviews'])
  t.same(s.httpRoutes[0].spec, parse(HTTP_ROUTE).spec, 'the spec as written')
  t.same(s.virtualServices[0].spec, parse(VIRTUAL_SERVICE('x')).spec)
  t.same(s.destinationRules[0].spec, parse(DESTINATION_RULE).spec)
  t.same(s.rateLimits[0].spec, { targetRefs: [{ kind: 'Service', name: 'reviews' }], limit: { requests: 100, per: 'second', burst: 20 } })
  t.equal(s.httpRoutes[1].apiVersion, 'gateway.networking.k8s.io/v1beta1')
  t.ok(Object.isFrozen(s.httpRoutes[0].spec.rules?.[0].backendRefs?.[0]), 'deeply frozen')
  t.same(s.httpRoutes[0].origin, { file: FILE, line: 1 })
  t.equal(s.documents.length, 6, 'every object in force has its document (what the controller serves)')

  for (const v of ['networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3']) {
    t.equal(admit(VIRTUAL_SERVICE(v)).virtualServices.length, 1, `${v} is read too`)
  }
  t.match(issues(admit(VIRTUAL_SERVICE('networking.istio.io/v2')), 'VirtualService prod/reviews-route'), [/apiVersion: "networking.istio.io\/v2" is not one of "networking.istio.io\/v1", "networking.istio.io\/v1beta1", "networking.istio.io\/v1alpha3"/])
  t.match(issues(admit(GRPC_ROUTE.replace('/v1\n', '/v1beta1\n')), 'GRPCRoute default/foo-route'), [/apiVersion: "gateway.networking.k8s.io\/v1beta1" is not one of "gateway.networking.k8s.io\/v1"/], 'GRPCRoute is v1 only')
})

t.test('an unknown field, a wrong type, an unsupported field: refused, naming file, line, object and field', async (t) => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['HTTPRoute bookinfo/reviews-canary', HTTP_ROUTE.replace('      weight: 90\n', '      weight: 90\n      colour: red\n'), 'unknown field', /^\/config\/traffic\.yaml:\d+: HTTPRoute bookinfo\/reviews-canary: spec\.rules\[0\]\.backendRefs\[0\]\.colour: unknown field \(known here: group, kind, name, namespace, port, weight, filters\)$/],
    ['HTTPRoute bookinfo/reviews-canary', HTTP_ROUTE.replace('weight: 90', 'weight: "90"'), 'wrong type', /:40: HTTPRoute bookinfo\/reviews-canary: spec\.rules\[0\]\.backendRefs\[0\]\.weight: must be integer, not string "90"$/],
    ['HTTPRoute bookinfo/reviews-canary', HTTP_ROUTE.replace('    timeouts:', '    sessionPersistence:\n      sessionName: s\n    timeouts:'), 'unsupported field', /:\d+: HTTPRoute bookinfo\/reviews-canary: spec\.rules\[0\]\.sessionPersistence: not supported by Ferry: session persistence .*; the HTTPRoute is refused/],
    ['GRPCRoute default/foo-route', GRPC_ROUTE.replace('        method: Login\n', '        method: Login\n        verb: POST\n'), 'unknown field', /:15: GRPCRoute default\/foo-route: spec\.rules\[0\]\.matches\[0\]\.method\.verb: unknown field/],
    ['GRPCRoute default/foo-route', GRPC_ROUTE.replace('weight: 3', 'weight: [3]'), 'wrong type', /GRPCRoute default\/foo-route: spec\.rules\[0\]\.backendRefs\[0\]\.weight: must be integer, not a list$/],
    ['GRPCRoute default/foo-route', GRPC_ROUTE.replace('  rules:\n', '  rules:\n  - filters:\n    - type: ExtensionRef\n      extensionRef: { group: x.io, kind: Auth, name: a }\n'), 'unsupported value and field', /GRPCRoute default\/foo-route: spec\.rules\[0\]\.filters\[0\]\.type: "ExtensionRef": not supported by Ferry: extension filters/],
    ['VirtualService prod/reviews-route', VIRTUAL_SERVICE('networking.istio.io/v1').replace('    timeout: 10s\n', '    timeout: 10s\n    timout: 5s\n'), 'unknown field', /VirtualService prod\/reviews-route: spec\.http\[1\]\.timout: unknown field/],
    ['VirtualService prod/reviews-route', VIRTUAL_SERVICE('networking.istio.io/v1').replace('attempts: 3', 'attempts: three'), 'wrong type', /:\d+: VirtualService prod\/reviews-route: spec\.http\[1\]\.retries\.attempts: must be integer, not string "three"$/],
    ['VirtualService prod/reviews-route', VIRTUAL_SERVICE('networking.istio.io/v1').replace('    rewrite:\n', '    corsPolicy:\n      allowOrigins: [{ exact: "https://example.com" }]\n    rewrite:\n'), 'unsupported field', /VirtualService prod\/reviews-route: spec\.http\[0\]\.corsPolicy: not supported by Ferry: CORS answers.*; the VirtualService is refused/],
    ['DestinationRule prod/bookinfo-ratings', DESTINATION_RULE.replace('  host: ratings', '  hots: x\n  host: ratings'), 'unknown field', /:7: DestinationRule prod\/bookinfo-ratings: spec\.hots: unknown field/],
    ['DestinationRule prod/bookinfo-ratings', DESTINATION_RULE.replace('maxConnections: 100', 'maxConnections: -1'), 'out of range', /DestinationRule prod\/bookinfo-ratings: spec\.trafficPolicy\.connectionPool\.tcp\.maxConnections: must be at least 0, not -1$/],
    ['DestinationRule prod/bookinfo-ratings', DESTINATION_RULE.replace('  subsets:\n', '    tls:\n      mode: ISTIO_MUTUAL\n  subsets:\n'), 'unsupported field', /DestinationRule prod\/bookinfo-ratings: spec\.trafficPolicy\.tls: not supported by Ferry: .*mTLS/],
    ['RateLimit bookinfo/reviews', RATE_LIMIT.replace('    burst: 20\n', '    burst: 20\n    window: 1s\n'), 'unknown field', /RateLimit bookinfo\/reviews: spec\.limit\.window: unknown field \(known here: requests, per, burst\)/],
    ['RateLimit bookinfo/reviews', RATE_LIMIT.replace('per: second', 'per: day'), 'wrong value', /RateLimit bookinfo\/reviews: spec\.limit\.per: "day" is not one of "second", "minute", "hour"/],
    ['RateLimit bookinfo/reviews', RATE_LIMIT.replace('  targetRefs:', '  selector: { matchLabels: { app: reviews } }\n  targetRefs:'), 'two targets', /RateLimit bookinfo\/reviews: spec\.targetRefs: must not be set with selector \(at most one of selector, targetRefs\)/]
  ]
  for (const [object, text, what, want] of cases) {
    const s = admit(text)
    t.match(report(s, object), { state: 'refused', refusal: 'invalid', inForce: 'none' }, `${object}: ${what}`)
    t.ok(issues(s, object).some((i) => want.test(i)), `${object}: ${what}: ${issues(s, object).join(' | ')}`)
  }
})

t.test('the specifications\' own rules: a filter\'s field follows its type, a match\'s value its type', async (t) => {
  const bad = HTTP_ROUTE
    .replace('      requestHeaderModifier:\n', '      responseHeaderModifier:\n')
    .replace('value: /reviews', 'value: reviews')
    .replace('value: "^[0-9]+$"', 'value: "[0-9"')
  const all = issues(admit(bad), 'HTTPRoute bookinfo/reviews-canary')
  t.ok(all.some((i) => /spec\.rules\[0\]\.filters\[0\]\.requestHeaderModifier: is required when type is RequestHeaderModifier/.test(i)))
  t.ok(all.some((i) => /spec\.rules\[0\]\.filters\[0\]\.responseHeaderModifier: must not be set when type is RequestHeaderModifier \(it goes with type ResponseHeaderModifier\)/.test(i)))
  t.ok(all.some((i) => /spec\.rules\[0\]\.matches\[0\]\.path\.value: "reviews" must be an absolute path/.test(i)))
  t.ok(all.some((i) => /spec\.rules\[0\]\.matches\[0\]\.queryParams\[0\]\.value: "\[0-9" is not a regular expression Ferry can run/.test(i)))
  const vs = issues(admit(VIRTUAL_SERVICE('networking.istio.io/v1').replace('prefix: "/wpcatalog"', 'prefix: "/wpcatalog"\n        exact: "/x"').replace('retryOn: gateway-error', 'retryOn: gateway-error,sometimes')), 'VirtualService prod/reviews-route')
  t.ok(vs.some((i) => /spec\.http\[0\]\.match\[0\]\.uri: must set only one of exact, prefix, regex/.test(i)), vs.join(' | '))
  t.ok(vs.some((i) => /spec\.http\[1\]\.retries\.retryOn: .* names "sometimes", which is not a retryOn policy/.test(i)))
})

// Found by test/fuzz/config-documents.test.ts: a RateLimit or DestinationRule without a
// spec skipped the spec's required fields, was accepted, and threw a TypeError where the
// data plane compiles it (rate-limit-select.ts, the DestinationRule compiler).
t.test('a kind whose spec has required fields is refused without a spec', async (t) => {
  for (const [apiVersion, kind] of [['security.ferry.dev/v1alpha1', 'RateLimit'], ['networking.istio.io/v1', 'DestinationRule']]) {
    const s = admit(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: { name: a, namespace: traffic }\n`)
    t.equal(report(s, `${kind} traffic/a`).state, 'refused', kind)
    t.match(issues(s, `${kind} traffic/a`), [/: spec: is required/], kind)
  }
  const s = admit('apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: a, namespace: traffic }\n')
  t.equal(report(s, 'HTTPRoute traffic/a').state, 'accepted', 'a kind whose spec has no required field may leave it out')
})

t.test('a refused new version keeps the previous good one in force; every other object keeps working', async (t) => {
  const a = new ConfigAdmission()
  const good = admit([HTTP_ROUTE, DESTINATION_RULE, RATE_LIMIT].join('---\n'), a)
  t.equal(good.objects.filter((o) => o.state === 'accepted').length, 3)

  const next = admit([
    HTTP_ROUTE.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50').replace('    timeouts:', '    sessionPersistence:\n      sessionName: s\n    timeouts:'),
    DESTINATION_RULE.replace('simple: LEAST_REQUEST', 'simple: ROUND_ROBIN'),
    RATE_LIMIT.replace('requests: 100', 'requests: 200')
  ].join('---\n'), a)
  const route = report(next, 'HTTPRoute bookinfo/reviews-canary')
  t.match(route, { state: 'refused', inForce: 'earlier-version', note: 'the earlier version (/config/traffic.yaml:1) keeps applying' })
  t.same(next.httpRoutes[0].spec.rules?.[0].backendRefs?.map((b) => b.weight), [90, 10], 'the 90/10 split keeps serving, not the refused 50/50')
  t.equal(next.destinationRules[0].spec.trafficPolicy?.loadBalancer?.simple, 'ROUND_ROBIN', 'the other objects\' changes apply')
  t.equal(next.rateLimits[0].spec.limit.requests, 200)
  t.equal(next.documents.length, 3, 'the earlier version is what is served')

  const fresh = admit(HTTP_ROUTE.replace('weight: 90', 'weight: "90"'))
  t.match(report(fresh, 'HTTPRoute bookinfo/reviews-canary'), { state: 'refused', inForce: 'none', note: 'nothing of it is in force (no earlier valid version)' })
  t.equal(fresh.httpRoutes.length, 0, 'no earlier version: none')

  const fixed = admit(HTTP_ROUTE.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'), a)
  t.same(fixed.httpRoutes[0].spec.rules?.[0].backendRefs?.map((b) => b.weight), [80, 20], 'a valid change applies')
})

t.test('server-written metadata and status are left out of a route, not refused', async (t) => {
  const s = admitDocuments([{ path: FILE, text: GRPC_ROUTE.replace('  namespace: default\n', '  namespace: default\n  uid: \"1234\"\n  resourceVersion: "7"\n') + 'status:\n  parents: []\n' }], { origin: '/config', generation: 1 })
  t.match(report(s, 'GRPCRoute default/foo-route'), { state: 'degraded', inForce: 'degraded' })
  t.equal(s.grpcRoutes.length, 1)
})

t.test('a kind of the routing groups Ferry does not read is named as such', async (t) => {
  const s = admit('apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: g, namespace: default }\nspec: {}\n')
  t.match(s.objects[0].issues[0].message, /"Gateway" \(gateway.networking.k8s.io\/v1\) is not supported by Ferry; Ferry reads AuthorizationPolicy, PeerAuthentication, HTTPRoute, GRPCRoute, VirtualService, DestinationRule, RateLimit/)
})

t.test('a route keeps its creationTimestamp (Gateway API orders routes of equal precedence by age)', async (t) => {
  const s = admit(GRPC_ROUTE.replace('  namespace: default\n', '  namespace: default\n  creationTimestamp: "2026-11-26T01:00:00Z"\n'))
  t.match(report(s, 'GRPCRoute default/foo-route'), { state: 'accepted' }, 'not a degradation')
  t.equal(s.grpcRoutes[0].metadata.creationTimestamp, '2026-11-26T01:00:00Z')
  t.notOk('creationTimestamp' in admit(GRPC_ROUTE).grpcRoutes[0].metadata, 'absent when not written')
})
