import { GATEWAY_API_VERSIONS, GATEWAY_HTTP_ROUTE_VERSIONS } from './documents'
import { arrayOf, AT_MOST_ONE, closed, int, MATCH_VALUE, resourceSchema, routeMetadata, UNION, unsupported, UNSUPPORTED_VALUES } from './schema-parts'

// Gateway API's HTTPRoute and GRPCRoute (gateway.networking.k8s.io, standard and
// experimental channels), every field declared with the specification's types and
// limits. A route attaches to a Service (GAMMA: parentRefs of kind Service). What Ferry
// does not carry out is marked x-ferry-unsupported: a route using it is refused, naming
// the field (src/resources/degrade.ts). The specification's own checks that its CRDs make
// with CEL (a filter's field matches its type, a path modifier's value matches its
// type) are x-ferry-union here, and a match's value (a path, a regular expression) is
// checked against its type by x-ferry-match-value.

const NAME = { type: 'string', minLength: 1, maxLength: 253 }
const NAMESPACE = { type: 'string', format: 'ferry-k8s-namespace' }
const GROUP = { type: 'string', maxLength: 253 }
const KIND = { type: 'string', minLength: 1, maxLength: 63 }
const PORT = int(1, 65535)
const SECTION = { type: 'string', minLength: 1, maxLength: 253 }
const DURATION = { type: 'string', format: 'ferry-gateway-duration' }
const HEADER_NAME = { type: 'string', format: 'ferry-header-name' }
const MATCH_TYPE = { type: 'string', enum: ['Exact', 'RegularExpression'] }

const parentRef = closed({ group: GROUP, kind: KIND, namespace: NAMESPACE, name: NAME, sectionName: SECTION, port: PORT }, { required: ['name'] })

const backendObjectRef = { group: GROUP, kind: KIND, name: NAME, namespace: NAMESPACE, port: PORT }

const header = closed({ name: HEADER_NAME, value: { type: 'string', maxLength: 4096 } }, { required: ['name', 'value'] })
const headerFilter = closed({
  set: arrayOf(header, { maxItems: 16 }),
  add: arrayOf(header, { maxItems: 16 }),
  remove: arrayOf(HEADER_NAME, { maxItems: 16 })
})

const pathModifier = closed({
  type: { type: 'string', enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] },
  replaceFullPath: { type: 'string', maxLength: 1024 },
  replacePrefixMatch: { type: 'string', maxLength: 1024 }
}, { required: ['type'], [UNION]: { tag: 'type', fields: { ReplaceFullPath: 'replaceFullPath', ReplacePrefixMatch: 'replacePrefixMatch' } } })

const HOSTNAME = { type: 'string', format: 'ferry-hostname' }

const requestRedirect = closed({
  scheme: { type: 'string', enum: ['http', 'https'] },
  hostname: HOSTNAME,
  path: pathModifier,
  port: PORT,
  statusCode: { type: 'integer', enum: [301, 302, 303, 307, 308] }
})

const urlRewrite = closed({ hostname: HOSTNAME, path: pathModifier })

const requestMirror = closed({
  backendRef: closed(backendObjectRef, { required: ['name'] }),
  percent: int(0, 100),
  fraction: closed({ numerator: int(0), denominator: int(1) }, { required: ['numerator'] })
}, { required: ['backendRef'], [AT_MOST_ONE]: ['percent', 'fraction'] })

const extensionRef = closed({ group: GROUP, kind: KIND, name: NAME }, { required: ['group', 'kind', 'name'] })

const EXTENSION = 'extension filters name implementation-specific resources; Ferry has none'
const CORS = 'CORS answers are not made by Ferry; the application answers preflight requests'

const cors = closed({
  allowOrigins: arrayOf({ type: 'string' }),
  allowCredentials: { type: 'boolean' },
  allowMethods: arrayOf({ type: 'string' }),
  allowHeaders: arrayOf({ type: 'string' }),
  exposeHeaders: arrayOf({ type: 'string' }),
  maxAge: int(1)
})

const externalAuth = { type: 'object' }

const HTTP_FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth'
}

const httpFilter = closed({
  type: {
    type: 'string',
    enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite'],
    [UNSUPPORTED_VALUES]: {
      ExtensionRef: `not supported by Ferry: ${EXTENSION}`,
      CORS: `not supported by Ferry: ${CORS}`,
      ExternalAuth: 'not supported by Ferry: external authorization is not called by Ferry; use an AuthorizationPolicy'
    }
  },
  requestHeaderModifier: headerFilter,
  responseHeaderModifier: headerFilter,
  requestMirror,
  requestRedirect,
  urlRewrite,
  extensionRef: unsupported(EXTENSION, extensionRef),
  cors: unsupported(CORS, cors),
  externalAuth: unsupported('external authorization is not called by Ferry; use an AuthorizationPolicy', externalAuth)
}, { required: ['type'], [UNION]: { tag: 'type', fields: HTTP_FILTER_FIELDS } })

const GRPC_FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef'
}

const grpcFilter = closed({
  type: {
    type: 'string',
    enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'],
    [UNSUPPORTED_VALUES]: { ExtensionRef: `not supported by Ferry: ${EXTENSION}` }
  },
  requestHeaderModifier: headerFilter,
  responseHeaderModifier: headerFilter,
  requestMirror,
  extensionRef: unsupported(EXTENSION, extensionRef)
}, { required: ['type'], [UNION]: { tag: 'type', fields: GRPC_FILTER_FIELDS } })

const SESSION = 'session persistence (sticky sessions) is not offered on routes; a DestinationRule\'s consistentHash gives session affinity'
const sessionPersistence = unsupported(SESSION, closed({
  sessionName: { type: 'string', maxLength: 128 },
  absoluteTimeout: DURATION,
  idleTimeout: DURATION,
  type: { type: 'string', enum: ['Cookie', 'Header'] },
  cookieConfig: closed({ lifetimeType: { type: 'string', enum: ['Permanent', 'Session'] } })
}))

const headerMatch = closed({ type: MATCH_TYPE, name: HEADER_NAME, value: { type: 'string', minLength: 1, maxLength: 4096 } }, { required: ['name', 'value'], [MATCH_VALUE]: 'string' })
const queryParamMatch = closed({ type: MATCH_TYPE, name: { type: 'string', minLength: 1, maxLength: 256 }, value: { type: 'string', minLength: 1, maxLength: 1024 } }, { required: ['name', 'value'], [MATCH_VALUE]: 'string' })

const httpMatch = closed({
  path: closed({
    type: { type: 'string', enum: ['Exact', 'PathPrefix', 'RegularExpression'] },
    value: { type: 'string', maxLength: 1024 }
  }, { [MATCH_VALUE]: 'path' }),
  headers: arrayOf(headerMatch, { maxItems: 16 }),
  queryParams: arrayOf(queryParamMatch, { maxItems: 16 }),
  method: { type: 'string', enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] }
})

const WEIGHT = int(0, 1_000_000)

const httpRule = closed({
  name: SECTION,
  matches: arrayOf(httpMatch, { maxItems: 64 }),
  filters: arrayOf(httpFilter, { maxItems: 16 }),
  backendRefs: arrayOf(closed({ ...backendObjectRef, weight: WEIGHT, filters: arrayOf(httpFilter, { maxItems: 16 }) }, { required: ['name'] }), { maxItems: 16 }),
  timeouts: closed({ request: DURATION, backendRequest: DURATION }),
  retry: closed({ codes: arrayOf(int(400, 599)), attempts: int(0), backoff: DURATION }),
  sessionPersistence
})

const grpcMatch = closed({
  method: closed({
    type: MATCH_TYPE,
    service: { type: 'string', maxLength: 1024 },
    method: { type: 'string', maxLength: 1024 }
  }, { [MATCH_VALUE]: 'grpc' }),
  headers: arrayOf(headerMatch, { maxItems: 16 })
})

const grpcRule = closed({
  name: SECTION,
  matches: arrayOf(grpcMatch, { maxItems: 64 }),
  filters: arrayOf(grpcFilter, { maxItems: 16 }),
  backendRefs: arrayOf(closed({ ...backendObjectRef, weight: WEIGHT, filters: arrayOf(grpcFilter, { maxItems: 16 }) }, { required: ['name'] }), { maxItems: 16 }),
  sessionPersistence
})

const common = {
  parentRefs: arrayOf(parentRef, { maxItems: 32 }),
  hostnames: arrayOf(HOSTNAME, { maxItems: 16 })
}

export const HTTP_ROUTE_SPEC = closed({ ...common, rules: arrayOf(httpRule, { maxItems: 16 }) })
export const GRPC_ROUTE_SPEC = closed({ ...common, rules: arrayOf(grpcRule, { maxItems: 16 }) })

export const GATEWAY_SCHEMAS = Object.freeze({
  HTTPRoute: resourceSchema('HTTPRoute', GATEWAY_HTTP_ROUTE_VERSIONS, HTTP_ROUTE_SPEC, routeMetadata),
  GRPCRoute: resourceSchema('GRPCRoute', GATEWAY_API_VERSIONS, GRPC_ROUTE_SPEC, routeMetadata)
})
