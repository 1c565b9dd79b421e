import { SECURITY_API_VERSIONS, type ResourceKind } from './documents'

// One JSON schema per kind, the only description of what a valid document is. Every
// object is closed (`additionalProperties: false`); free-form maps (labels) say what
// their values are. Fields that Istio has and Ferry does not support are *declared*, so
// that a document using one is rejected by name with the reason, never ignored:
//
//   x-ferry-unsupported: "reason"            the field may not appear at all
//   x-ferry-unsupported-values: {V: reason}  the field may not take value V
//
// Formats (ferry-*) are checked by validate.ts, which also turns ajv's errors into
// messages a person can act on.

export const UNSUPPORTED = 'x-ferry-unsupported'
export const UNSUPPORTED_VALUES = 'x-ferry-unsupported-values'

const NEEDS_L7 = 'needs L7, not yet supported by Ferry (Ferry authorizes TCP connections: use ports / notPorts)'
const SERVER_WRITTEN = 'written by the API server; not part of a configuration file'

function unsupported (reason: string): object {
  return { [UNSUPPORTED]: `not supported by Ferry: ${reason}` }
}

const str = { type: 'string', minLength: 1 }
const labelMap = { type: 'object', additionalProperties: { type: 'string' } }

function list (format: string): object {
  return { type: 'array', minItems: 1, items: { type: 'string', format } }
}

/** An L7 field: type-checked like Istio's, then refused until Ferry has L7. */
function l7List (): object {
  return { type: 'array', minItems: 1, items: str, [UNSUPPORTED]: NEEDS_L7 }
}

const dryRunValue = { type: 'string', enum: ['true', 'false'] }

const metadata = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'namespace'],
  properties: {
    name: { type: 'string', format: 'ferry-k8s-name' },
    namespace: { type: 'string', format: 'ferry-k8s-namespace' },
    labels: labelMap,
    annotations: {
      type: 'object',
      additionalProperties: { type: 'string' },
      properties: { 'istio.io/dry-run': dryRunValue, 'ferry.dev/dry-run': dryRunValue }
    },
    uid: { [UNSUPPORTED]: SERVER_WRITTEN },
    resourceVersion: { [UNSUPPORTED]: SERVER_WRITTEN },
    generation: { [UNSUPPORTED]: SERVER_WRITTEN },
    creationTimestamp: { [UNSUPPORTED]: SERVER_WRITTEN },
    managedFields: { [UNSUPPORTED]: SERVER_WRITTEN },
    selfLink: { [UNSUPPORTED]: SERVER_WRITTEN }
  }
}

const selector = {
  type: 'object',
  additionalProperties: false,
  properties: { matchLabels: labelMap }
}

function resourceSchema (kind: ResourceKind, spec: object): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['apiVersion', 'kind', 'metadata'],
    properties: {
      apiVersion: { type: 'string', enum: [...SECURITY_API_VERSIONS] },
      kind: { const: kind },
      metadata,
      spec,
      status: { [UNSUPPORTED]: SERVER_WRITTEN }
    }
  }
}

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
    requestPrincipals: unsupported('request principals come from JWTs (RequestAuthentication), which need L7'),
    notRequestPrincipals: unsupported('request principals come from JWTs (RequestAuthentication), which need L7'),
    remoteIpBlocks: unsupported('the original client address (X-Forwarded-For, PROXY protocol) is not known to Ferry; use ipBlocks'),
    notRemoteIpBlocks: unsupported('the original client address (X-Forwarded-For, PROXY protocol) is not known to Ferry; use notIpBlocks'),
    serviceAccounts: unsupported('write the identity as a principal instead, e.g. principals: ["cluster.local/ns/NS/sa/SA"]'),
    notServiceAccounts: unsupported('write the identity as a principal instead, e.g. notPrincipals: ["cluster.local/ns/NS/sa/SA"]')
  }
}

const operation = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    ports: list('ferry-port'),
    notPorts: list('ferry-port'),
    methods: l7List(),
    notMethods: l7List(),
    paths: l7List(),
    notPaths: l7List(),
    hosts: unsupported('matching the HTTP Host header needs L7'),
    notHosts: unsupported('matching the HTTP Host header needs L7')
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
    when: unsupported('conditions (`when`) are not evaluated by Ferry; express them with from.source and to.operation')
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
    provider: unsupported('external authorization providers (action CUSTOM) need L7'),
    targetRef: unsupported('Gateway API targets; select workloads with selector.matchLabels'),
    targetRefs: unsupported('Gateway API targets; select workloads with selector.matchLabels')
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
  AuthorizationPolicy: resourceSchema('AuthorizationPolicy', authorizationPolicySpec),
  PeerAuthentication: resourceSchema('PeerAuthentication', peerAuthenticationSpec)
})
