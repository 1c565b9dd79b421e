import { FERRY_KINDS, FERRY_SECURITY_VERSIONS, type FerryKind } from '../resources/documents'
import { AT_MOST_ONE, CONDITION, SCHEMAS, UNSUPPORTED, UNSUPPORTED_VALUES } from '../resources/schema'

// CustomResourceDefinitions for Ferry's own resources (AuthorizationPolicy,
// PeerAuthentication, RateLimit; the Gateway API and Istio CRDs are their projects'
// own installs), derived from the one
// schema the loader validates with (src/resources/schema.ts), so the API server and
// Ferry agree on what a document may hold. daemonset/base/crds.yaml is this output;
// test/install/crds.test.ts fails when the two differ.
//
// The API server needs a *structural* schema (every node typed, no additionalProperties
// false, no JSON-schema extras), so the conversion is:
//
//   type, enum, required, items, properties,
//   minItems, minLength, minProperties,
//   minimum, maximum                         kept
//   additionalProperties: false              dropped: the API server prunes unknown
//                                            fields, and kubectl's strict field
//                                            validation reports them
//   format ferry-port                        a pattern
//   other ferry-* formats, propertyNames     left to Ferry's loader (it reports them)
//   x-ferry-unsupported                      kept as a field (untyped fields keep any
//                                            value), refused by a CEL rule on the
//                                            parent with Ferry's reason, so kubectl
//                                            apply fails instead of pruning it silently
//   x-ferry-unsupported-values               added to the enum, refused by a CEL rule
//   dependencies, x-ferry-at-most-one        a CEL rule
//   x-ferry-condition (a `when` entry)       left to Ferry's loader: which keys it
//                                            evaluates, degrades or refuses, and their
//                                            values (src/resources/conditions.ts)
//
// A keyword the conversion does not know is an error: a schema change must be decided
// here, not passed through.
//
// `status` is a subresource that only the controller writes (its verdict on each object:
// conditions FerryAccepted and FerryDegraded, src/controller/policy-status.ts); its
// schema keeps whatever is written there, as Istio's CRDs do for theirs.

export const CRD_GROUP = 'security.ferry.dev'
export const CRD_VERSION = FERRY_SECURITY_VERSIONS[0].split('/')[1]

type Schema = Record<string, any>

interface Rule { rule: string, message: string }

const KNOWN = new Set(['type', 'enum', 'const', 'required', 'items', 'properties', 'additionalProperties', 'minItems', 'minLength',
  'minProperties', 'minimum', 'maximum', 'format', 'propertyNames', 'dependencies', UNSUPPORTED, UNSUPPORTED_VALUES, CONDITION, AT_MOST_ONE])
/** Checked by Ferry's loader only: CEL or OpenAPI could express them only at a cost the API server would refuse or that says little. */
const LOADER_ONLY_FORMATS = new Set(['ferry-string-match', 'ferry-ip-block', 'ferry-k8s-name', 'ferry-k8s-namespace', 'ferry-path-match', 'ferry-method'])
const PORT_PATTERN = '^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$'
const CEL_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const CEL_RESERVED = new Set(['as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package',
  'namespace', 'return', 'var', 'void', 'in', 'null', 'true', 'false'])

export const PLURALS: Readonly<Record<FerryKind, string>> = Object.freeze({
  AuthorizationPolicy: 'authorizationpolicies',
  PeerAuthentication: 'peerauthentications',
  RateLimit: 'ratelimits'
})

const PRINTER_COLUMNS: Readonly<Record<FerryKind, Schema[]>> = Object.freeze({
  AuthorizationPolicy: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'ALLOW (the default) or DENY' }],
  PeerAuthentication: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'mTLS mode of the selected workloads' }],
  RateLimit: [
    { name: 'Requests', type: 'integer', jsonPath: '.spec.limit.requests', description: 'Requests allowed per period, per destination pod' },
    { name: 'Per', type: 'string', jsonPath: '.spec.limit.per', description: 'second, minute or hour' }
  ]
})

const DESCRIPTIONS: Readonly<Record<FerryKind, string>> = Object.freeze({
  AuthorizationPolicy: 'Which connections and HTTP requests the selected workloads accept (Istio\'s AuthorizationPolicy). See docs/policy.md.',
  PeerAuthentication: 'Whether the selected workloads require mutual TLS (Istio\'s PeerAuthentication). See docs/policy.md.',
  RateLimit: 'A local rate limit of the selected workloads: one token bucket per destination pod, at its node. See docs/traffic.md.'
})

/** The CRD of one kind, as a plain object. */
export function buildCrd (kind: FerryKind): Schema {
  const plural = PLURALS[kind]
  const resource = SCHEMAS[kind] as Schema
  const spec = convert(resource.properties.spec, 'spec')
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${CRD_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'ferry' } },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), categories: ['ferry'] },
      versions: [{
        name: CRD_VERSION,
        served: true,
        storage: true,
        additionalPrinterColumns: [
          ...PRINTER_COLUMNS[kind],
          { name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="FerryAccepted")].status', description: 'Whether Ferry enforces it (see the FerryAccepted and FerryDegraded conditions)' },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }
        ],
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            description: DESCRIPTIONS[kind],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec,
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }
            }
          }
        }
      }]
    }
  }
}

/** Every Ferry CRD, in a stable order. */
export function buildCrds (): Schema[] {
  return FERRY_KINDS.map((k) => buildCrd(k))
}

function convert (node: Schema, path: string): Schema {
  for (const key of Object.keys(node)) {
    if (!KNOWN.has(key)) throw new Error(`crds: ${path}: schema keyword "${key}" has no CRD conversion; decide one in src/install/crds.ts`)
  }
  const out: Schema = {}
  const rules: Rule[] = []
  if (node.type !== undefined) out.type = node.type
  if (node.const !== undefined) out.enum = [node.const]
  if (node.enum !== undefined) {
    const refused = Object.entries((node[UNSUPPORTED_VALUES] ?? {}) as Record<string, string>)
    out.enum = [...node.enum, ...refused.map(([v]) => v)]
    for (const [value, reason] of refused) rules.push({ rule: `self != ${JSON.stringify(value)}`, message: `${value}: ${reason}` })
  }
  for (const k of ['minItems', 'minLength', 'minProperties', 'minimum', 'maximum'] as const) if (node[k] !== undefined) out[k] = node[k]
  if (node.format === 'ferry-port') out.pattern = PORT_PATTERN
  else if (node.format !== undefined && !LOADER_ONLY_FORMATS.has(node.format)) throw new Error(`crds: ${path}: format "${String(node.format)}" has no CRD conversion`)
  if (node.items !== undefined) out.items = convert(node.items, `${path}[]`)
  if (node.properties !== undefined) {
    out.properties = {}
    for (const [name, child] of Object.entries(node.properties as Record<string, Schema>)) {
      const reason = child[UNSUPPORTED] as string | undefined
      if (reason !== undefined) {
        rules.push({ rule: `!has(self.${celField(name, path)})`, message: `${name}: ${reason}` })
        const { [UNSUPPORTED]: _reason, ...typed } = child
        out.properties[name] = typed.type === undefined ? { 'x-kubernetes-preserve-unknown-fields': true } : convert(typed, `${path}.${name}`)
      } else {
        out.properties[name] = convert(child, `${path}.${name}`)
      }
    }
  }
  if (node.additionalProperties !== undefined && node.additionalProperties !== false) {
    out.additionalProperties = convert(node.additionalProperties, `${path}{}`)
  }
  if (node.required !== undefined) out.required = [...node.required]
  for (const [field, needs] of Object.entries((node.dependencies ?? {}) as Record<string, string[]>)) {
    const f = celField(field, path)
    rules.push({ rule: `!has(self.${f}) || (${needs.map((n) => `has(self.${celField(n, path)})`).join(' && ')})`, message: `${field} needs ${needs.join(', ')}` })
  }
  const exclusive = node[AT_MOST_ONE] as string[] | undefined
  if (exclusive !== undefined) {
    const has = exclusive.map((f) => `has(self.${celField(f, path)})`)
    rules.push({ rule: `[${has.join(', ')}].filter(x, x).size() <= 1`, message: `at most one of ${exclusive.join(', ')}` })
  }
  if (rules.length > 0) out['x-kubernetes-validations'] = rules
  return out
}

function celField (name: string, path: string): string {
  if (!CEL_IDENTIFIER.test(name) || CEL_RESERVED.has(name)) throw new Error(`crds: ${path}.${name}: not a plain CEL identifier; escape it before use`)
  return name
}
