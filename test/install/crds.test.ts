import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { buildCrds, CRD_GROUP } from '../../src/install/crds'
import type { KubeObject } from '../../src/install/kustomize'
import { structuralIssues } from '../../src/install/structural'
import { formatProblems, validateManifests } from '../../src/install/validate'
import { toYamlDocuments } from '../../src/install/yaml-out'
import { SCHEMAS, UNSUPPORTED } from '../../src/resources/schema'

// Ferry's CRDs are derived from the schema its loader validates with. The checked-in
// daemonset/base/crds.yaml must be exactly that derivation (regenerate with
// FERRY_WRITE_CRDS=1 npx tap test/install/crds.test.ts), structural as
// apiextensions.k8s.io/v1 requires, and valid against the CustomResourceDefinition
// schema. The CEL rules are checked for shape here; only an API server compiles them.

const FILE = join(__dirname, '..', '..', 'daemonset', 'base', 'crds.yaml')
const HEADER = `# Generated from src/resources/schema.ts by src/install/crds.ts: do not edit.
# Regenerate: FERRY_WRITE_CRDS=1 npx tap test/install/crds.test.ts
`

if (process.env.FERRY_WRITE_CRDS === '1') writeFileSync(FILE, toYamlDocuments(buildCrds(), HEADER))

t.test('daemonset/base/crds.yaml is the CRDs derived from src/resources/schema.ts', async (t) => {
  const text = readFileSync(FILE, 'utf8')
  t.ok(text.startsWith(HEADER), 'it says it is generated and how to regenerate it')
  const onDisk = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS())
  t.same(onDisk, buildCrds(), 'up to date (FERRY_WRITE_CRDS=1 npx tap test/install/crds.test.ts regenerates it)')
})

t.test('the CRDs are structural and valid CustomResourceDefinitions', async (t) => {
  const crds = buildCrds()
  t.same(crds.map((c) => c.metadata.name), [`authorizationpolicies.${CRD_GROUP}`, `peerauthentications.${CRD_GROUP}`, `ratelimits.${CRD_GROUP}`])
  for (const crd of crds) t.same(structuralIssues(crd.spec.versions[0].schema.openAPIV3Schema), [], `${crd.metadata.name} is structural`)
  t.equal(formatProblems(validateManifests(crds as KubeObject[])), '')
})

t.test('every field Ferry refuses is refused by the API server too, with Ferry\'s reason (not pruned silently)', async (t) => {
  // Walk the loader's schema and the CRD side by side: a field marked unsupported must
  // exist in the CRD (so it is stored, not pruned) and its parent must carry the rule.
  const walk = (ours: any, crd: any, path: string): void => {
    for (const [name, child] of Object.entries((ours.properties ?? {}) as Record<string, any>)) {
      t.ok(crd.properties?.[name] !== undefined, `${path}.${name} is in the CRD`)
      if (child[UNSUPPORTED] !== undefined) {
        const rule = (crd['x-kubernetes-validations'] ?? []).find((r: any) => r.rule === `!has(self.${name})`)
        t.ok(rule !== undefined && rule.message.startsWith(`${name}: `), `${path}.${name} is refused by a CEL rule`)
      } else {
        walk(child, crd.properties[name], `${path}.${name}`)
      }
      if (child.items !== undefined && child[UNSUPPORTED] === undefined) walk(child.items, crd.properties[name].items, `${path}.${name}[]`)
    }
  }
  for (const crd of buildCrds()) {
    const kind = crd.spec.names.kind as keyof typeof SCHEMAS
    walk((SCHEMAS[kind] as any).properties.spec, crd.spec.versions[0].schema.openAPIV3Schema.properties.spec, kind)
  }
  const ap = buildCrds()[0].spec.versions[0].schema.openAPIV3Schema.properties.spec
  t.same(ap.properties.action.enum, ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], 'AUDIT and CUSTOM are accepted by the enum…')
  t.same(ap.properties.action['x-kubernetes-validations'].map((r: any) => r.rule), ['self != "AUDIT"', 'self != "CUSTOM"'], '…and refused by a rule that says why')
})

t.test('the structural checker refuses what the API server refuses', async (t) => {
  const issues = structuralIssues({
    type: 'object',
    properties: {
      metadata: { type: 'object', properties: { labels: { type: 'object' } } },
      spec: {
        type: 'object',
        additionalProperties: false,
        properties: {
          untyped: {},
          list: { type: 'array', items: [{ type: 'string' }] },
          both: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } },
          junctor: { type: 'object', properties: { a: { type: 'string' } }, anyOf: [{ type: 'object', properties: { b: {} } }] },
          unique: { type: 'array', items: { type: 'string' }, uniqueItems: true },
          ref: { type: 'string', $ref: '#/x' },
          typo: { type: 'string', minLenght: 1 },
          badRule: { type: 'string', 'x-kubernetes-validations': [{ message: 'x' }] }
        }
      }
    }
  }).map((i) => `${i.path}: ${i.message}`).join('\n')
  t.match(issues, /metadata: only name and generateName may be restricted, not labels/)
  t.match(issues, /spec: additionalProperties: false is not allowed/)
  t.match(issues, /properties\.untyped: has no type/)
  t.match(issues, /properties\.list: items must be one schema/)
  t.match(issues, /properties\.both: properties and additionalProperties are mutually exclusive/)
  t.match(issues, /junctor\.anyOf\[0\]: "type" is not allowed inside/)
  t.match(issues, /junctor\.anyOf\[0\]\.properties\.b: is not specified outside the junctor/)
  t.match(issues, /unique: uniqueItems: true is not allowed/)
  t.match(issues, /ref: "\$ref" is not allowed/)
  t.match(issues, /typo: unknown field "minLenght"/)
  t.match(issues, /badRule: x-kubernetes-validations\[0\] has no rule/)
})
