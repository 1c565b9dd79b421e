// Is a CRD's openAPIV3Schema *structural*, as apiextensions.k8s.io/v1 requires? The
// rules (Kubernetes docs, "Specifying a structural schema"), checked on the plain
// object:
//   - every node has a type: the root, each property, each additionalProperties schema
//     and each items schema, except nodes with x-kubernetes-int-or-string or
//     x-kubernetes-preserve-unknown-fields: true;
//   - properties and additionalProperties do not appear together, and
//     additionalProperties is a schema (false is not allowed: pruning does its work);
//   - items is one schema, never a list;
//   - inside allOf/anyOf/oneOf/not: no type, additionalProperties, default, nullable,
//     description, x-kubernetes-* keys, and no field or items not also specified outside;
//   - only the keys of JSONSchemaProps and of validation rules appear;
//   - metadata at the root may only restrict name and generateName;
//   - fields that v1 CRDs forbid: $ref, definitions, id, patternProperties,
//     additionalItems, dependencies, uniqueItems: true; x-kubernetes-preserve-unknown-
//     fields must be true when present; int-or-string nodes carry no type.

export interface StructuralIssue { readonly path: string, readonly message: string }

type Schema = Record<string, any>

/** The keys of apiextensions.k8s.io/v1 JSONSchemaProps: anything else is an unknown field. */
const SCHEMA_KEYS = new Set(['$ref', '$schema', 'additionalItems', 'additionalProperties', 'allOf', 'anyOf', 'default', 'definitions',
  'dependencies', 'description', 'enum', 'example', 'exclusiveMaximum', 'exclusiveMinimum', 'externalDocs', 'format', 'id', 'items',
  'maxItems', 'maxLength', 'maxProperties', 'maximum', 'minItems', 'minLength', 'minProperties', 'minimum', 'multipleOf', 'not',
  'nullable', 'oneOf', 'pattern', 'patternProperties', 'properties', 'required', 'title', 'type', 'uniqueItems',
  'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys', 'x-kubernetes-list-type',
  'x-kubernetes-map-type', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations'])
const RULE_KEYS = new Set(['rule', 'message', 'messageExpression', 'reason', 'fieldPath', 'optionalOldSelf'])

const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'] as const
const FORBIDDEN = ['$ref', 'definitions', 'id', 'patternProperties', 'additionalItems', 'dependencies', '$schema']
const NOT_IN_JUNCTOR = ['type', 'additionalProperties', 'default', 'nullable', 'description', 'title', 'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type', 'x-kubernetes-validations']

export function structuralIssues (schema: Schema): StructuralIssue[] {
  const issues: StructuralIssue[] = []
  checkNode(schema, 'openAPIV3Schema', issues, true)
  const metadata = schema.properties?.metadata as Schema | undefined
  if (metadata !== undefined) {
    for (const key of Object.keys(metadata)) {
      if (key !== 'type' && key !== 'properties') issues.push({ path: 'openAPIV3Schema.properties.metadata', message: `"${key}" is not allowed on metadata` })
    }
    for (const name of Object.keys((metadata.properties ?? {}) as Schema)) {
      if (name !== 'name' && name !== 'generateName') issues.push({ path: 'openAPIV3Schema.properties.metadata', message: `only name and generateName may be restricted, not ${name}` })
    }
  }
  return issues
}

function checkNode (node: Schema, path: string, issues: StructuralIssue[], mustHaveType: boolean): void {
  const add = (message: string): void => { issues.push({ path, message }) }
  if (node === null || typeof node !== 'object' || Array.isArray(node)) { add('must be a schema object'); return }
  for (const key of Object.keys(node)) if (!SCHEMA_KEYS.has(key)) add(`unknown field "${key}"`)
  for (const [i, rule] of ((node['x-kubernetes-validations'] ?? []) as Schema[]).entries()) {
    if (typeof rule?.rule !== 'string' || rule.rule === '') add(`x-kubernetes-validations[${i}] has no rule`)
    for (const key of Object.keys(rule ?? {})) if (!RULE_KEYS.has(key)) add(`x-kubernetes-validations[${i}]: unknown field "${key}"`)
  }
  const preserve = node['x-kubernetes-preserve-unknown-fields']
  const intOrString = node['x-kubernetes-int-or-string'] === true
  if (preserve !== undefined && preserve !== true) add('x-kubernetes-preserve-unknown-fields must be true when present')
  if (intOrString && node.type !== undefined) add('x-kubernetes-int-or-string nodes must not have a type')
  if (mustHaveType && !intOrString && preserve !== true && (typeof node.type !== 'string' || node.type === '')) add('has no type')
  for (const key of FORBIDDEN) if (node[key] !== undefined) add(`"${key}" is not allowed in a v1 CRD schema`)
  if (node.uniqueItems === true) add('uniqueItems: true is not allowed')
  if (node.properties !== undefined && node.additionalProperties !== undefined) add('properties and additionalProperties are mutually exclusive')
  if (node.additionalProperties === false) add('additionalProperties: false is not allowed (unknown fields are pruned)')
  if (Array.isArray(node.items)) add('items must be one schema, not a list')
  for (const [name, child] of Object.entries((node.properties ?? {}) as Schema)) checkNode(child, `${path}.properties.${name}`, issues, true)
  if (isSchema(node.additionalProperties)) checkNode(node.additionalProperties, `${path}.additionalProperties`, issues, true)
  if (isSchema(node.items)) checkNode(node.items, `${path}.items`, issues, true)
  for (const j of JUNCTORS) {
    const branches: Schema[] = j === 'not' ? (node.not === undefined ? [] : [node.not]) : (node[j] ?? [])
    branches.forEach((b, i) => { checkJunctor(b, node, `${path}.${j}${j === 'not' ? '' : `[${i}]`}`, issues) })
  }
}

/** A value validation inside a junctor: no structure of its own, only fields already specified outside. */
function checkJunctor (branch: Schema, outside: Schema | undefined, path: string, issues: StructuralIssue[]): void {
  for (const key of NOT_IN_JUNCTOR) if (branch[key] !== undefined) issues.push({ path, message: `"${key}" is not allowed inside allOf/anyOf/oneOf/not` })
  for (const [name, child] of Object.entries((branch.properties ?? {}) as Schema)) {
    const out = outside?.properties?.[name] as Schema | undefined
    if (out === undefined) issues.push({ path: `${path}.properties.${name}`, message: 'is not specified outside the junctor' })
    checkJunctor(child, out, `${path}.properties.${name}`, issues)
  }
  if (isSchema(branch.items)) {
    if (!isSchema(outside?.items)) issues.push({ path: `${path}.items`, message: 'items are not specified outside the junctor' })
    checkJunctor(branch.items, outside?.items, `${path}.items`, issues)
  }
  for (const j of JUNCTORS) {
    const inner: Schema[] = j === 'not' ? (branch.not === undefined ? [] : [branch.not]) : (branch[j] ?? [])
    inner.forEach((b, i) => { checkJunctor(b, outside, `${path}.${j}${j === 'not' ? '' : `[${i}]`}`, issues) })
  }
}

function isSchema (v: unknown): v is Schema {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
