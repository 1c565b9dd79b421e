import type { ResourceKind } from './documents'

// The pieces every kind's schema is made of (src/resources/schema.ts and the
// schema-*.ts of each API group): Ferry's schema keywords, the object metadata, and the
// small shapes several kinds share. Only data: the checks are in validate.ts.

/** A field Ferry cannot enforce (its value: the reason). src/resources/degrade.ts decides what happens. */
export const UNSUPPORTED = 'x-ferry-unsupported'
/** `{ VALUE: reason }`: values of an enum Ferry cannot enforce. */
export const UNSUPPORTED_VALUES = 'x-ferry-unsupported-values'
/** On a `when` entry: its key and values are checked by src/resources/conditions.ts. */
export const CONDITION = 'x-ferry-condition'
/**
 * A tagged union (Gateway API's filters and path modifiers): `{ tag: 'type', fields: { VALUE: 'field' } }`
 * — the field the tag names must be set, and no other field of the map.
 */
export const UNION = 'x-ferry-union'
/**
 * On a Gateway API match (path, header, query parameter, gRPC method): its value is
 * checked against its type — 'path': Exact / PathPrefix (the default) an absolute path,
 * RegularExpression a regular expression; 'string': RegularExpression a regular
 * expression; 'grpc': service or method set, each a regular expression when so typed.
 */
export const MATCH_VALUE = 'x-ferry-match-value'
/** A list of field names of which at most one may be set. */
export const AT_MOST_ONE = 'x-ferry-at-most-one'

export const SERVER_WRITTEN = 'written by the API server; no effect on access'
const NO_EFFECT = 'no effect on access'

/** A field Ferry cannot enforce, with the type its API gives it. */
export function unsupported (reason: string, type: object): object {
  return { ...type, [UNSUPPORTED]: `not supported by Ferry: ${reason}` }
}

export const str = { type: 'string', minLength: 1 }
export const labelMap = { type: 'object', additionalProperties: { type: 'string' } }

export function list (format: string): object {
  return { type: 'array', minItems: 1, items: { type: 'string', format } }
}

/** A list of strings, as Istio types most of its fields. */
export const strList = { type: 'array', items: { type: 'string' } }

export function int (minimum?: number, maximum?: number): object {
  return { type: 'integer', ...(minimum === undefined ? {} : { minimum }), ...(maximum === undefined ? {} : { maximum }) }
}

export function closed (properties: Record<string, object>, extra: Record<string, unknown> = {}): object {
  return { type: 'object', additionalProperties: false, properties, ...extra }
}

export function arrayOf (items: object, extra: Record<string, unknown> = {}): object {
  return { type: 'array', items, ...extra }
}

/** Istio's PolicyTargetReference (Gateway API). */
export const targetRef = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'name'],
  properties: { group: { type: 'string' }, kind: str, name: str, namespace: { type: 'string' } }
}

const dryRunValue = { type: 'string', enum: ['true', 'false'] }

export const metadata = {
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

/**
 * The routing kinds' metadata: creationTimestamp is kept, because Gateway API orders
 * routes of equal precedence by age (the oldest first) — the controller carries it from
 * the API server.
 */
export const routeMetadata = {
  ...metadata,
  properties: { ...metadata.properties, creationTimestamp: { type: 'string', minLength: 1 } }
}

export const selector = {
  type: 'object',
  additionalProperties: false,
  properties: { matchLabels: labelMap }
}

/** A whole document of `kind`: apiVersion one of `versions`, the metadata, `spec`, and a status Ferry ignores. */
/** A kind whose spec has required fields requires the spec itself: an absent spec would skip those checks. */
export function resourceSchema (kind: ResourceKind, versions: readonly string[], spec: object, meta: object = metadata): object {
  const specRequired = ((spec as { required?: unknown[] }).required ?? []).length > 0
  return {
    type: 'object',
    additionalProperties: false,
    required: ['apiVersion', 'kind', 'metadata', ...(specRequired ? ['spec'] : [])],
    properties: {
      apiVersion: { type: 'string', enum: [...versions] },
      kind: { const: kind },
      metadata: meta,
      spec,
      status: { type: 'object', [UNSUPPORTED]: SERVER_WRITTEN }
    }
  }
}
