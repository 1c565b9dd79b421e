import { FERRY_SECURITY_VERSIONS, ISTIO_NETWORKING_VERSIONS, type ResourceKind, SECURITY_API_VERSIONS } from './documents'
import { CONDITION, list, resourceSchema, routeMetadata, selector, str, strList, targetRef, unsupported, UNSUPPORTED_VALUES } from './schema-parts'
import { GATEWAY_SCHEMAS } from './schema-gateway'
import { DESTINATION_RULE_SPEC, VIRTUAL_SERVICE_SPEC } from './schema-istio'
import { RATE_LIMIT_SPEC } from './schema-rate-limit'

// One JSON schema per kind, the only description of what a valid document is. Every
// object is closed (`additionalProperties: false`); free-form maps (labels) say what
// their values are. Fields that Istio has and Ferry cannot enforce are *declared* with
// Istio's types, so that a document using one is well-formed (a wrong type is still
// malformed) and the field is named with the reason, never silently ignored:
//
//   x-ferry-unsupported: "reason"            Ferry cannot enforce the field
//   x-ferry-unsupported-values: {V: reason}  Ferry cannot enforce value V
//
// What happens to such a document is src/resources/degrade.ts's job: it is applied in a
// form that never allows more than written (or refused when no such form exists).
// Formats (ferry-*) are checked by validate.ts, which also turns ajv's errors into
// messages a person can act on.
//
// The routing kinds (Gateway API's HTTPRoute and GRPCRoute, Istio's VirtualService and
// DestinationRule: schema-gateway.ts, schema-istio.ts) declare every field of their
// APIs the same way, but a route has no "narrower" form: one that uses a field Ferry
// cannot carry out is refused, naming the field (degrade.ts). Ferry's RateLimit is
// schema-rate-limit.ts.

export { AT_MOST_ONE, CONDITION, UNION, UNSUPPORTED, UNSUPPORTED_VALUES } from './schema-parts'

const source = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    principals: list('ferry-string-match'),
    notPrincipals: list('ferry-string-match'),
    namespaces: list('ferry-string-match'),
    notNamespaces: list('ferry-string-match'),
    ipBlocks: list('ferry-ip-block'),
    notIpBlocks: list('ferry-ip-block'),
    requestPrincipals: unsupported('request principals come from JWTs (RequestAuthentication), which need L7', strList),
    notRequestPrincipals: unsupported('request principals come from JWTs (RequestAuthentication), which need L7', strList),
    remoteIpBlocks: unsupported('the original client address (X-Forwarded-For, PROXY protocol) is not known to Ferry; use ipBlocks', strList),
    notRemoteIpBlocks: unsupported('the original client address (X-Forwarded-For, PROXY protocol) is not known to Ferry; use notIpBlocks', strList),
    serviceAccounts: unsupported('write the identity as a principal instead, e.g. principals: ["cluster.local/ns/NS/sa/SA"]', strList),
    notServiceAccounts: unsupported('write the identity as a principal instead, e.g. notPrincipals: ["cluster.local/ns/NS/sa/SA"]', strList)
  }
}

const operation = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    ports: list('ferry-port'),
    notPorts: list('ferry-port'),
    // L7: matched per request where L7 is engaged (docs/policy.md, "L7 authorization").
    methods: list('ferry-method'),
    notMethods: list('ferry-method'),
    paths: list('ferry-path-match'),
    notPaths: list('ferry-path-match'),
    hosts: list('ferry-string-match'),
    notHosts: list('ferry-string-match')
  }
}

const rule = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', additionalProperties: false, required: ['source'], properties: { source } }
    },
    to: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', additionalProperties: false, required: ['operation'], properties: { operation } }
    },
    when: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key'],
        properties: { key: str, values: strList, notValues: strList },
        [CONDITION]: true
      }
    }
  }
}

const authorizationPolicySpec = {
  type: 'object',
  additionalProperties: false,
  properties: {
    selector,
    action: {
      type: 'string',
      enum: ['ALLOW', 'DENY'],
      [UNSUPPORTED_VALUES]: {
        AUDIT: 'not supported by Ferry: AUDIT needs an audit provider',
        CUSTOM: 'not supported by Ferry: CUSTOM delegates to an external authorizer, which needs L7'
      }
    },
    rules: { type: 'array', items: rule },
    provider: unsupported('external authorization providers (action CUSTOM) need L7', {
      type: 'object', additionalProperties: false, properties: { name: { type: 'string' } }
    }),
    targetRef: unsupported('Gateway API targets; select workloads with selector.matchLabels', targetRef),
    targetRefs: unsupported('Gateway API targets; select workloads with selector.matchLabels', { type: 'array', items: targetRef })
  }
}

const mtls = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: {
      type: 'string',
      enum: ['STRICT', 'PERMISSIVE', 'UNSET'],
      [UNSUPPORTED_VALUES]: {
        DISABLE: 'not supported by Ferry: Ferry does not turn mTLS off between meshed workloads; PERMISSIVE also accepts plaintext'
      }
    }
  }
}

const peerAuthenticationSpec = {
  type: 'object',
  additionalProperties: false,
  dependencies: { portLevelMtls: ['selector'] },
  properties: {
    selector,
    mtls,
    portLevelMtls: {
      type: 'object',
      minProperties: 1,
      propertyNames: { type: 'string', format: 'ferry-port' },
      additionalProperties: mtls
    }
  }
}

export const SCHEMAS: Readonly<Record<ResourceKind, object>> = Object.freeze({
  AuthorizationPolicy: resourceSchema('AuthorizationPolicy', SECURITY_API_VERSIONS, authorizationPolicySpec),
  PeerAuthentication: resourceSchema('PeerAuthentication', SECURITY_API_VERSIONS, peerAuthenticationSpec),
  ...GATEWAY_SCHEMAS,
  VirtualService: resourceSchema('VirtualService', ISTIO_NETWORKING_VERSIONS, VIRTUAL_SERVICE_SPEC, routeMetadata),
  DestinationRule: resourceSchema('DestinationRule', ISTIO_NETWORKING_VERSIONS, DESTINATION_RULE_SPEC, routeMetadata),
  RateLimit: resourceSchema('RateLimit', FERRY_SECURITY_VERSIONS, RATE_LIMIT_SPEC)
})
