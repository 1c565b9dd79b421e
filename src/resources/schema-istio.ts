import { arrayOf, closed, int, labelMap, strList, unsupported, UNSUPPORTED_VALUES } from './schema-parts'

// Istio's VirtualService and DestinationRule (networking.istio.io v1, v1beta1, v1alpha3:
// the same spec), every field declared with Istio's types. What Ferry does not carry out
// is marked x-ferry-unsupported: an object using it is refused, naming the field
// (src/resources/degrade.ts) — a route or a traffic policy applied without part of
// itself would send traffic where its author did not mean it to go. Only the mesh applies:
// `gateways` may name "mesh" alone, and `exportTo` only "*" (what Ferry does: every
// namespace sees the object).

const DURATION = { type: 'string', format: 'ferry-duration' }
const HOST = { type: 'string', minLength: 1 }
const PORT = int(1, 65535)
const PERCENT = closed({ value: { type: 'number', minimum: 0, maximum: 100 } })

/** Istio's StringMatch: exactly one of exact, prefix, regex. */
const stringMatch = closed({
  exact: { type: 'string' },
  prefix: { type: 'string' },
  regex: { type: 'string', format: 'ferry-regex' }
}, { maxProperties: 1 })

/** headers / withoutHeaders: `{}` matches presence. */
const stringMatchMap = { type: 'object', additionalProperties: stringMatch }

const destination = closed({
  host: HOST,
  subset: { type: 'string', minLength: 1 },
  port: closed({ number: PORT })
}, { required: ['host'] })

const headerOperations = closed({
  set: { type: 'object', additionalProperties: { type: 'string' } },
  add: { type: 'object', additionalProperties: { type: 'string' } },
  remove: strList
})
const headers = closed({ request: headerOperations, response: headerOperations })

const MESH_ONLY = { type: 'string', enum: ['mesh'] }
const EXPORT_TO = arrayOf({ type: 'string', format: 'ferry-export-to' })

const L4 = 'TLS and TCP routes are not carried out by Ferry; it routes HTTP and gRPC'

const httpMatch = closed({
  name: { type: 'string' },
  uri: stringMatch,
  scheme: unsupported('requests inside the mesh are plain HTTP to Ferry: there is no scheme to match', stringMatch),
  method: stringMatch,
  authority: stringMatch,
  headers: stringMatchMap,
  port: PORT,
  sourceLabels: labelMap,
  gateways: arrayOf(MESH_ONLY),
  queryParams: stringMatchMap,
  ignoreUriCase: { type: 'boolean' },
  withoutHeaders: stringMatchMap,
  sourceNamespace: { type: 'string', format: 'ferry-k8s-namespace' },
  statPrefix: unsupported('Ferry\'s metrics take no per-route prefix', { type: 'string' })
})

const corsPolicy = closed({
  allowOrigins: arrayOf(stringMatch),
  allowOrigin: strList,
  allowMethods: strList,
  allowHeaders: strList,
  exposeHeaders: strList,
  maxAge: DURATION,
  allowCredentials: { type: 'boolean' },
  unmatchedPreflights: { type: 'string', enum: ['UNSPECIFIED', 'FORWARD', 'IGNORE'] }
})

const istioHttpRoute = closed({
  name: { type: 'string' },
  match: arrayOf(httpMatch),
  route: arrayOf(closed({ destination, weight: int(0), headers }, { required: ['destination'] })),
  redirect: closed({
    uri: { type: 'string' },
    authority: { type: 'string' },
    port: PORT,
    derivePort: unsupported('write the port to redirect to', { type: 'string', enum: ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] }),
    scheme: { type: 'string' },
    redirectCode: { type: 'integer', enum: [301, 302, 303, 307, 308] }
  }),
  directResponse: unsupported('Ferry does not answer requests in place of the service (a fault abort answers with a status only)', closed({
    status: int(200, 599),
    body: closed({ string: { type: 'string' }, bytes: { type: 'string' } }, { maxProperties: 1 })
  }, { required: ['status'] })),
  delegate: unsupported('VirtualService delegation applies to gateways, which Ferry does not have', closed({ name: { type: 'string' }, namespace: { type: 'string' } })),
  rewrite: closed({
    uri: { type: 'string' },
    authority: { type: 'string' },
    uriRegexRewrite: unsupported('regular-expression rewrites are not carried out by Ferry; rewrite.uri replaces the matched prefix', closed({ match: { type: 'string' }, rewrite: { type: 'string' } }))
  }),
  timeout: DURATION,
  retries: closed({
    attempts: int(0),
    perTryTimeout: DURATION,
    retryOn: { type: 'string', format: 'ferry-retry-on' },
    retryRemoteLocalities: unsupported('Ferry does not know localities', { type: 'boolean' }),
    retryIgnorePreviousHosts: { type: 'boolean' },
    backoff: DURATION
  }),
  fault: closed({
    delay: closed({
      fixedDelay: DURATION,
      exponentialDelay: unsupported('Istio does not implement it either; use fixedDelay', DURATION),
      percentage: PERCENT,
      percent: int(0, 100)
    }),
    abort: closed({
      httpStatus: int(200, 599),
      grpcStatus: { type: 'string', format: 'ferry-grpc-status' },
      http2Error: unsupported('Ferry aborts with an HTTP or gRPC status', { type: 'string' }),
      percentage: PERCENT
    })
  }),
  mirror: destination,
  mirrors: arrayOf(closed({ destination, percentage: PERCENT }, { required: ['destination'] })),
  mirrorPercentage: PERCENT,
  mirrorPercent: int(0, 100),
  corsPolicy: unsupported('CORS answers are not made by Ferry; the application answers preflight requests', corsPolicy),
  headers
})

const l4Match = { type: 'object', additionalProperties: true }

export const VIRTUAL_SERVICE_SPEC = closed({
  hosts: arrayOf(HOST),
  gateways: arrayOf(MESH_ONLY),
  http: arrayOf(istioHttpRoute),
  tls: unsupported(L4, arrayOf(closed({ match: arrayOf(l4Match), route: arrayOf({ type: 'object' }) }))),
  tcp: unsupported(L4, arrayOf(closed({ match: arrayOf(l4Match), route: arrayOf({ type: 'object' }) }))),
  exportTo: EXPORT_TO
})

// ---- DestinationRule -------------------------------------------------------------------

const consistentHash = closed({
  httpHeaderName: { type: 'string', minLength: 1 },
  httpCookie: closed({
    name: { type: 'string', minLength: 1 },
    path: { type: 'string' },
    ttl: DURATION,
    attributes: unsupported('cookie attributes are not written by Ferry', arrayOf({ type: 'object' }))
  }, { required: ['name'] }),
  useSourceIp: { type: 'boolean' },
  httpQueryParameterName: { type: 'string', minLength: 1 },
  ringHash: unsupported('Ferry has one consistent hash; its ring is not configurable', closed({ minimumRingSize: int(0) })),
  maglev: unsupported('Ferry has one consistent hash; Maglev is not offered', closed({ tableSize: int(0) })),
  minimumRingSize: unsupported('Ferry has one consistent hash; its ring is not configurable', int(0))
}, { maxProperties: 1 })

const loadBalancer = closed({
  simple: {
    type: 'string',
    enum: ['UNSPECIFIED', 'RANDOM', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN'],
    [UNSUPPORTED_VALUES]: { PASSTHROUGH: 'not supported by Ferry: it always picks an endpoint of the service (no original destination)' }
  },
  consistentHash,
  localityLbSetting: unsupported('Ferry does not know localities', { type: 'object' }),
  warmupDurationSecs: unsupported('slow start is not offered by Ferry\'s balancers', DURATION),
  warmup: unsupported('slow start is not offered by Ferry\'s balancers', { type: 'object' })
}, { maxProperties: 1 })

const KEEPALIVE = 'TCP keepalive of upstream connections is not set per destination by Ferry'

const connectionPool = closed({
  tcp: closed({
    maxConnections: int(0),
    connectTimeout: DURATION,
    tcpKeepalive: unsupported(KEEPALIVE, closed({ probes: int(0), time: DURATION, interval: DURATION })),
    maxConnectionDuration: unsupported('upstream connections are not closed by age in Ferry', DURATION),
    idleTimeout: DURATION
  }),
  http: closed({
    http1MaxPendingRequests: int(0),
    http2MaxRequests: int(0),
    maxRequestsPerConnection: int(0),
    maxRetries: unsupported('Ferry bounds retries with its retry budget (20 % of requests + 10/s per node), not a count of retries in flight', int(0)),
    idleTimeout: DURATION,
    h2UpgradePolicy: unsupported('the upstream protocol follows the Service port\'s declared protocol (docs/l7.md)', { type: 'string', enum: ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] }),
    useClientProtocol: unsupported('the upstream protocol follows the Service port\'s declared protocol (docs/l7.md)', { type: 'boolean' }),
    maxConcurrentStreams: unsupported('HTTP/2 stream limits per upstream connection are Ferry\'s own', int(0))
  })
})

const outlierDetection = closed({
  splitExternalLocalOriginErrors: unsupported('Ferry counts local-origin failures (consecutiveLocalOriginFailures) apart always', { type: 'boolean' }),
  consecutiveLocalOriginFailures: int(0),
  consecutiveGatewayErrors: int(0),
  consecutive5xxErrors: int(0),
  consecutiveErrors: unsupported('deprecated by Istio; use consecutive5xxErrors', int(0)),
  interval: DURATION,
  baseEjectionTime: DURATION,
  maxEjectionPercent: int(0, 100),
  minHealthPercent: int(0, 100)
})

const TLS = 'Ferry secures traffic between meshed workloads with its own mTLS; TLS origination to a destination is not offered'
const clientTls = closed({
  mode: { type: 'string', enum: ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] },
  clientCertificate: { type: 'string' },
  privateKey: { type: 'string' },
  caCertificates: { type: 'string' },
  credentialName: { type: 'string' },
  subjectAltNames: strList,
  sni: { type: 'string' },
  insecureSkipVerify: { type: 'boolean' },
  caCrl: { type: 'string' }
})

const policyFields = { loadBalancer, connectionPool, outlierDetection, tls: unsupported(TLS, clientTls) }

const trafficPolicy = closed({
  ...policyFields,
  portLevelSettings: arrayOf(closed({ port: closed({ number: PORT }), ...policyFields })),
  tunnel: unsupported('Ferry tunnels between nodes itself; CONNECT tunnels to a destination are not offered', closed({ protocol: { type: 'string' }, targetHost: { type: 'string' }, targetPort: int(1, 65535) })),
  proxyProtocol: unsupported('the PROXY protocol is not sent by Ferry', closed({ version: { type: 'string', enum: ['V1', 'V2'] } })),
  retryBudget: unsupported('Ferry\'s retry budget is its own (20 % of requests + 10/s per node, docs/traffic.md)', closed({ percent: PERCENT, minRetryConcurrency: int(0) }))
})

export const DESTINATION_RULE_SPEC = closed({
  host: HOST,
  trafficPolicy,
  subsets: arrayOf(closed({ name: { type: 'string', format: 'ferry-k8s-name' }, labels: labelMap, trafficPolicy }, { required: ['name'] })),
  exportTo: EXPORT_TO,
  workloadSelector: unsupported('a DestinationRule applies to every caller in Ferry; a workload selector would narrow who it applies to', closed({ matchLabels: labelMap }))
}, { required: ['host'] })
