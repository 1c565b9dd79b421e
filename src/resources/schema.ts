import { SECURITY_API_VERSIONS, type ResourceKind } from './documents'

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

export const UNSUPPORTED = 'x-ferry-unsupported'
export const UNSUPPORTED_VALUES = 'x-ferry-unsupported-values'
/** On a `when` entry: its key and values are checked by src/resources/conditions.ts. */
export const CONDITION = 'x-ferry-condition'

const SERVER_WRITTEN = 'written by the API server; no effect on access'
const NO_EFFECT = 'no effect on access'

/** A field Ferry cannot enforce, with Istio's type for it. */
function unsupported (reason: string, type: object): object {
  return { ...type, [UNSUPPORTED]: `not supported by Ferry: ${reason}` }
}

const str = { type: 'string', minLength: 1 }
const labelMap = { type: 'object', additionalProperties: { type: 'string' } }

function list (format: string): object {
  return { type: 'array', minItems: 1, items: { type: 'string', format } }
}

/** A list of strings, as Istio types most of its fields. */
const strList = { type: 'array', items: { type: 'string' } }


/** Istio's PolicyTargetReference (Gateway API). */
const targetRef = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'name'],
  properties: { group: { type: 'string' }, kind: str, name: str, namespace: { type: 'string' } }
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
    uid: { type: 'string', [UNSUPPORTED]: SERVER_WRITTEN },
    resourceVersion: { type: 'string', [UNSUPPORTED]: SERVER_WRITTEN },
    generation: { type: 'integer', [UNSUPPORTED]: SERVER_WRITTEN },
    creationTimestamp: { type: 'string', [UNSUPPORTED]: SERVER_WRITTEN },
    deletionTimestamp: { type: 'string', [UNSUPPORTED]: SERVER_WRITTEN },
    deletionGracePeriodSeconds: { type: 'integer', [UNSUPPORTED]: SERVER_WRITTEN },
    managedFields: { type: 'array', [UNSUPPORTED]: SERVER_WRITTEN },
    selfLink: { type: 'string', [UNSUPPORTED]: SERVER_WRITTEN },
    generateName: { type: 'string', [UNSUPPORTED]: NO_EFFECT },
    finalizers: { ...strList, [UNSUPPORTED]: NO_EFFECT },
    ownerReferences: { type: 'array', items: { type: 'object' }, [UNSUPPORTED]: NO_EFFECT }
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
      status: { type: 'object', [UNSUPPORTED]: SERVER_WRITTEN }
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
  AuthorizationPolicy: resourceSchema('AuthorizationPolicy', authorizationPolicySpec),
  PeerAuthentication: resourceSchema('PeerAuthentication', peerAuthenticationSpec)
})
