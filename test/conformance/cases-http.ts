import type { ExpectedCase, MeshConformanceTest } from './expectations'

// The MESH-HTTP cases of Gateway API's mesh conformance suite (conformance/tests/mesh/
// httproute-*.go and mesh-*.go), their requests and expectations as the suite states them.

const NS = 'gateway-conformance-mesh'
const to = (backend: string, path: string, headers?: Record<string, string>): ExpectedCase =>
  ({ request: { path, ...(headers !== undefined ? { headers } : {}) }, backend, namespace: NS })
const status = (code: number, path: string, headers?: Record<string, string>): ExpectedCase =>
  ({ request: { path, ...(headers !== undefined ? { headers } : {}) }, response: { statusCodes: [code] } })
const redirect = (path: string, code: number, where: ExpectedCase['redirect'], host?: string): ExpectedCase =>
  ({ request: { ...(host !== undefined ? { host } : {}), path }, response: { statusCodes: [code] }, redirect: where, namespace: NS })

/** The request header modifier cases, shared by the route-level and the backend-level test. */
const HEADER_MODIFIER_CASES: readonly ExpectedCase[] = [
  { request: { path: '/set', headers: { 'Some-Other-Header': 'val' } }, expectedRequest: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } }, backend: 'echo-v1', namespace: NS },
  { request: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } }, expectedRequest: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } }, backend: 'echo-v1', namespace: NS },
  { request: { path: '/add', headers: { 'Some-Other-Header': 'val' } }, expectedRequest: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' } }, backend: 'echo-v1', namespace: NS },
  { request: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' } }, expectedRequest: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' } }, backend: 'echo-v1', namespace: NS },
  { request: { path: '/remove', headers: { 'X-Header-Remove': 'val' } }, expectedRequest: { path: '/remove', absentHeaders: ['X-Header-Remove'] }, backend: 'echo-v1', namespace: NS },
  {
    request: { path: '/multiple', headers: { 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val' } },
    expectedRequest: {
      path: '/multiple',
      headers: { 'X-Header-Set-1': 'header-set-1', 'X-Header-Set-2': 'header-set-2', 'X-Header-Add-1': 'header-add-1', 'X-Header-Add-2': 'add-val-2,header-add-2', 'X-Header-Add-3': 'header-add-3', 'Another-Header': 'another-header-val' },
      absentHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2']
    },
    backend: 'echo-v1',
    namespace: NS
  },
  {
    request: { path: '/case-insensitivity', headers: { 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' } },
    expectedRequest: { path: '/case-insensitivity', headers: { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'Another-Header': 'another-header-val' }, absentHeaders: ['x-header-remove', 'X-Header-Remove'] },
    backend: 'echo-v1',
    namespace: NS
  }
]

const REWRITE_HEADERS_SENT = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' }
const REWRITE_HEADERS_SEEN = { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' }

export const HTTP_TESTS: readonly MeshConformanceTest[] = [
  {
    shortName: 'MeshBasic',
    description: 'A mesh client can communicate with a mesh server. This tests basic reachability with no configuration applied.',
    manifests: [],
    cases: [{ request: { host: 'echo', method: 'GET' }, response: { statusCodes: [200] } }]
  },
  {
    shortName: 'MeshHTTPRouteSimpleSameNamespace',
    description: 'A single HTTPRoute in the gateway-conformance-mesh namespace attaches to a Service in the same namespace',
    manifests: ['httproute-simple-same-namespace.yaml'],
    cases: [{ name: 'Simple HTTP request should reach infra-backend', request: { path: '/', host: 'echo' }, response: { statusCodes: [200] }, backend: 'echo-v1', namespace: NS }]
  },
  {
    shortName: 'MeshTrafficSplit',
    description: 'A mesh client can send traffic to a Service which is split between two versions',
    manifests: ['mesh-split.yaml'],
    cases: [
      { request: { host: 'echo', method: 'GET', path: '/v1' }, response: { statusCodes: [200] }, backend: 'echo-v1' },
      { request: { host: 'echo', method: 'GET', path: '/v2' }, response: { statusCodes: [200] }, backend: 'echo-v2' }
    ]
  },
  {
    shortName: 'MeshFrontend',
    description: 'Mesh rules should only apply to the associated frontend',
    manifests: ['mesh-frontend.yaml'],
    cases: [
      { name: 'Send to service', request: { host: 'echo-v2', method: 'GET' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'set' } }, backend: 'echo-v2' },
      { name: 'Send to pod IP', request: { host: '$V2_POD_IP:8080', method: 'GET' }, response: { statusCodes: [200], absentHeaders: ['X-Header-Set'] }, backend: 'echo-v2' }
    ]
  },
  {
    shortName: 'MeshFrontendHostname',
    description: 'Mesh parentRef matches Service IP (not Host)',
    manifests: ['mesh-frontend.yaml'],
    cases: [
      { name: 'Send to service with wrong hostname', request: { host: 'echo-v2', headers: { Host: 'echo-v1' }, method: 'GET' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'set' } }, backend: 'echo-v2' },
      { name: 'Send to other service with matching hostname', request: { host: 'echo-v1', headers: { Host: 'echo-v2' }, method: 'GET' }, response: { statusCodes: [200], absentHeaders: ['X-Header-Set'] }, backend: 'echo-v1' }
    ]
  },
  {
    shortName: 'MeshPorts',
    description: "A mesh route can optionally configure 'port' in parentRef",
    manifests: ['mesh-ports.yaml'],
    cases: [
      { name: 'Explicit port set, send to that port', request: { host: 'echo-v1', method: 'GET' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'v1' } }, backend: 'echo-v1' },
      { name: 'Explicit port, send to an excluded port', request: { host: 'echo-v1:8080', method: 'GET' }, response: { statusCodes: [200], absentHeaders: ['X-Header-Set'] }, backend: 'echo-v1' },
      { name: 'No port set', request: { host: 'echo-v2', method: 'GET' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'v2' } }, backend: 'echo-v2' },
      // The suite names this one "No port set" too.
      { name: 'No port set (port 8080)', request: { host: 'echo-v2:8080', method: 'GET' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'v2' } }, backend: 'echo-v2' }
    ]
  },
  {
    shortName: 'MeshConsumerRoute',
    description: "An HTTPRoute in a namespace other than its parentRef's namespace only affects requests from the route's namespace",
    manifests: ['mesh-consumer-route.yaml'],
    cases: [
      { name: "request from consumer route's namespace modified by HTTPRoute", client: 'consumer', request: { host: 'echo-v1.gateway-conformance-mesh', method: 'GET', path: '/' }, response: { statusCodes: [200], headers: { 'X-Header-Set': 'set' } }, backend: 'echo-v1' },
      { name: "request not from consumer route's namespace not modified by HTTPRoute", client: 'v1', request: { host: 'echo-v1.gateway-conformance-mesh', method: 'GET', path: '/' }, response: { statusCodes: [200], absentHeaders: ['X-Header-Set'] }, backend: 'echo-v1' }
    ]
  },
  {
    shortName: 'MeshHTTPRouteMatching',
    description: 'A single HTTPRoute with path and header matching for different backends',
    manifests: ['httproute-matching.yaml'],
    cases: [
      to('echo-v1', '/'),
      to('echo-v1', '/example'),
      to('echo-v1', '/', { Version: 'one' }),
      to('echo-v2', '/v2'),
      to('echo-v2', '/v2/example'),
      to('echo-v2', '/', { Version: 'two' }),
      to('echo-v2', '/v2/'),
      // Not a path segment prefix, so not /v2's.
      to('echo-v1', '/v2example'),
      to('echo-v1', '/foo/v2/example')
    ]
  },
  {
    shortName: 'MeshHTTPRouteQueryParamMatching',
    description: 'A single HTTPRoute with query param matching for different backends',
    manifests: ['httproute-query-param-matching.yaml'],
    cases: [
      to('echo-v1', '/?animal=whale'),
      to('echo-v2', '/?animal=dolphin'),
      to('echo-v1', '/?animal=whale&otherparam=irrelevant'),
      to('echo-v2', '/?animal=dolphin&color=yellow'),
      status(404, '/?color=blue'),
      status(404, '/?animal=dog'),
      status(404, '/?animal=whaledolphin'),
      status(404, '/'),
      // Combinations with core match types.
      to('echo-v1', '/path1?animal=whale'),
      to('echo-v2', '/?animal=whale', { version: 'one' }),
      // (cond1 AND cond2) OR (cond3 AND cond4 AND cond5).
      to('echo-v1', '/path3?animal=shark'),
      to('echo-v1', '/path4?animal=kraken', { version: 'three' }),
      status(404, '/?animal=shark'),
      status(404, '/path4?animal=kraken'),
      // Precedence: a path match wins over a query match.
      to('echo-v1', '/path5?animal=hydra')
    ]
  },
  {
    shortName: 'MeshHTTPRouteRequestHeaderModifier',
    description: 'An HTTPRoute has request header modifier filters applied correctly',
    manifests: ['httproute-request-header-modifier.yaml'],
    cases: HEADER_MODIFIER_CASES
  },
  {
    shortName: 'MeshHTTPRouteBackendRequestHeaderModifier',
    description: 'An HTTPRoute backend has request header modifier filters applied correctly',
    manifests: ['httproute-request-header-modifier-backend.yaml'],
    cases: HEADER_MODIFIER_CASES
  },
  {
    shortName: 'MeshHTTPRouteRewritePath',
    description: 'An HTTPRoute with path rewrite filter',
    manifests: ['httproute-rewrite-path.yaml'],
    cases: [
      { request: { path: '/prefix/one/two', host: 'echo' }, expectedRequest: { path: '/one/two' }, backend: 'echo-v1', namespace: NS },
      { request: { path: '/strip-prefix/three', host: 'echo' }, expectedRequest: { path: '/three' }, backend: 'echo-v1', namespace: NS },
      { request: { path: '/strip-prefix', host: 'echo' }, expectedRequest: { path: '/' }, backend: 'echo-v1', namespace: NS },
      { request: { path: '/full/one/two', host: 'echo' }, expectedRequest: { path: '/one' }, backend: 'echo-v1', namespace: NS },
      { request: { host: 'echo', path: '/full/rewrite-path-and-modify-headers/test', headers: REWRITE_HEADERS_SENT }, expectedRequest: { path: '/test', headers: REWRITE_HEADERS_SEEN, absentHeaders: ['X-Header-Remove'] }, backend: 'echo-v1', namespace: NS },
      { request: { host: 'echo', path: '/prefix/rewrite-path-and-modify-headers/one', headers: REWRITE_HEADERS_SENT }, expectedRequest: { path: '/prefix/one', headers: REWRITE_HEADERS_SEEN, absentHeaders: ['X-Header-Remove'] }, backend: 'echo-v1', namespace: NS }
    ]
  },
  {
    shortName: 'MeshHTTPRouteSchemeRedirect',
    description: 'An HTTPRoute with a scheme redirect filter',
    manifests: ['httproute-redirect-scheme.yaml'],
    cases: [
      redirect('/scheme', 302, { scheme: 'https' }, 'echo'),
      redirect('/scheme-and-host', 302, { host: 'example.org', scheme: 'https' }, 'echo'),
      redirect('/scheme-and-status', 301, { scheme: 'https' }, 'echo'),
      redirect('/scheme-and-host-and-status', 302, { scheme: 'https', host: 'example.org' }, 'echo')
    ]
  },
  {
    shortName: 'MeshHTTPRouteRedirectPath',
    description: 'An HTTPRoute with scheme redirect filter',
    manifests: ['httproute-redirect-path.yaml'],
    cases: [
      redirect('/original-prefix/lemon', 302, { path: '/replacement-prefix/lemon' }, 'echo'),
      redirect('/full/path/original', 302, { path: '/full-path-replacement' }, 'echo'),
      redirect('/path-and-host', 302, { host: 'example.org', path: '/replacement-prefix' }, 'echo'),
      redirect('/path-and-status', 301, { path: '/replacement-prefix' }, 'echo'),
      redirect('/full-path-and-host', 302, { host: 'example.org', path: '/replacement-full' }, 'echo'),
      redirect('/full-path-and-status', 301, { path: '/replacement-full' }, 'echo')
    ]
  },
  {
    shortName: 'MeshHTTPRouteRedirectPort',
    description: 'An HTTPRoute with a port redirect filter',
    manifests: ['httproute-redirect-port.yaml'],
    cases: [
      redirect('/port', 302, { port: '8083' }, 'echo'),
      redirect('/port-and-host', 302, { host: 'example.org', port: '8083' }, 'echo'),
      redirect('/port-and-status', 301, { port: '8083' }, 'echo'),
      redirect('/port-and-host-and-status', 302, { port: '8083', host: 'example.org' }, 'echo')
    ]
  },
  {
    shortName: 'MeshHTTPRouteRedirectHostAndStatus',
    description: 'An HTTPRoute with hostname and statusCode redirect filters',
    manifests: ['httproute-redirect-host-and-status.yaml'],
    cases: [
      redirect('/hostname-redirect', 302, { host: 'example.org' }, 'echo'),
      redirect('/host-and-status', 301, { host: 'example.org' }, 'echo')
    ]
  },
  {
    shortName: 'MeshHTTPRoute303Redirect',
    description: 'An HTTPRoute with statusCode 303 redirect filter',
    provisional: true,
    manifests: ['httproute-303-redirect.yaml'],
    cases: [redirect('/redirect', 303, { path: '/redirect' })]
  },
  {
    shortName: 'MeshHTTPRoute307Redirect',
    description: 'An HTTPRoute with statusCode 307 redirect filter',
    provisional: true,
    manifests: ['httproute-307-redirect.yaml'],
    cases: [redirect('/temporary', 307, { path: '/temporary' })]
  },
  {
    shortName: 'MeshHTTPRoute308Redirect',
    description: 'An HTTPRoute with statusCode 308 redirect filter',
    provisional: true,
    manifests: ['httproute-308-redirect.yaml'],
    cases: [redirect('/permanent', 308, { path: '/permanent' })]
  },
  {
    shortName: 'MeshHTTPRouteNamedRule',
    description: 'An HTTPRoute with a named HTTPRouteRule',
    provisional: true,
    manifests: ['httproute-named-rule.yaml'],
    cases: [
      { request: { path: '/named' }, expectedRequest: { path: '/named' }, backend: 'echo-v1', namespace: NS },
      // The suite writes ExpectedRequest.Path "/named" here, which its mesh client never
      // compares and which its own route contradicts (/unnamed is not rewritten): the
      // path is left unchecked, as the suite leaves it.
      { request: { path: '/unnamed' }, backend: 'echo-v2', namespace: NS }
    ]
  },
  {
    shortName: 'MeshHTTPRouteWeight',
    description: 'An HTTPRoute with weighted backends',
    manifests: ['httproute-weight.yaml'],
    cases: [],
    weights: { request: { path: '/', host: 'echo' }, shares: { 'echo-v1': 0.7, 'echo-v2': 0.3 } }
  }
]
