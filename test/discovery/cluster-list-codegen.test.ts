import t from 'tap'
import Ajv from 'ajv'
import { clusterListValidatorsSource, GENERATED_FILE, generatedIsCurrent } from '../../src/discovery/cluster-list-codegen'
import { CLUSTER_LIST_AJV_OPTIONS, LIST_SCHEMA, SCHEMAS } from '../../src/discovery/cluster-list-schema'
import * as generated from '../../src/discovery/cluster-list-validators'

// The cluster file's validators are ajv's standalone code, checked in (the agent then
// loads neither ajv's compiler nor generated code at start-up). Guards: the file is what
// the schemas generate today, and it answers exactly as ajv.compile of the same schema.

t.test('cluster-list-validators.ts is current (regenerate: node dist/src/discovery/cluster-list-codegen.js)', async (t) => {
  t.ok(generatedIsCurrent(), `${GENERATED_FILE} matches the schemas`)
  t.match(clusterListValidatorsSource(), /^\/\/ @ts-nocheck\n/)
})

const pod = { kind: 'Pod', metadata: { name: 'p', namespace: 'n', uid: 'u' }, spec: { nodeName: 'n1', containers: [{ ports: [{ containerPort: 8080, name: 'http', protocol: 'TCP' }] }] }, status: { podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }] } }
const svc = { kind: 'Service', metadata: { name: 's', namespace: 'n' }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80, targetPort: 'http' }] } }
const SAMPLES: Record<string, unknown[]> = {
  List: [{ apiVersion: 'v1', kind: 'List', items: [] }, {}, { apiVersion: 'v2', kind: 'List', items: [] }, { apiVersion: 'v1', kind: 'List', items: [{ kind: '' }] }, { apiVersion: 'v1', kind: 'List', items: 'x' }, null, []],
  Namespace: [{ metadata: { name: 'a', labels: { k: 'v' } } }, { metadata: {} }, { metadata: { name: 'a', labels: { k: 1 } } }, 'x'],
  Node: [{ metadata: { name: 'n1' } }, {}, { metadata: { name: '' } }],
  Pod: [pod, { ...pod, spec: undefined }, { ...pod, spec: { containers: [{ ports: [{ containerPort: 0 }] }] } }, { ...pod, spec: { containers: [{ ports: [{ containerPort: 80, protocol: 'HTTP' }] }] } },
    { ...pod, metadata: { name: 'p', namespace: 'n' } }, { ...pod, status: { podIPs: [{}] } }, { ...pod, spec: { hostNetwork: 'yes' } }],
  Service: [svc, { ...svc, spec: { ports: [{ port: 80, targetPort: 0 }] } }, { ...svc, spec: { ports: [{ port: 80, targetPort: 8080.5 }] } }, { ...svc, spec: { ports: [{}] } }, { ...svc, spec: { clusterIPs: [1] } }]
}

t.test('the generated validators answer exactly as ajv.compile of the same schemas', async (t) => {
  const ajv = new Ajv({ ...CLUSTER_LIST_AJV_OPTIONS })
  const schemas: Record<string, object> = { List: LIST_SCHEMA, ...SCHEMAS }
  const gen = generated as unknown as Record<string, ((data: unknown) => boolean) & { errors?: unknown }>
  t.same(Object.keys(gen).filter((k) => k !== 'default').sort(), Object.keys(schemas).sort(), 'one validator per kind')
  for (const [kind, samples] of Object.entries(SAMPLES)) {
    const compiled = ajv.compile(schemas[kind])
    for (const [i, sample] of samples.entries()) {
      const want = compiled(sample)
      t.equal(gen[kind](sample), want, `${kind} sample ${i}: ${want ? 'valid' : 'invalid'}`)
      t.same(gen[kind].errors, compiled.errors, `${kind} sample ${i}: the same errors`)
    }
  }
})
