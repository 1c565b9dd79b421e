import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Node } from 'kubernetes-models/v1/Node'
import { Pod } from 'kubernetes-models/v1/Pod'
import { Service } from 'kubernetes-models/v1/Service'
import type { FieldPath } from './issues'

// Validation against the real Kubernetes OpenAPI schemas, as compiled by
// kubernetes-models. Those validators check types, enums and required fields but do not
// reject unknown fields (the API server's "strict field validation" does). We recover
// that: every object in the document is wrapped in a Proxy that records which keys the
// validator reads. A generated validator reads each property its schema declares, and
// enumerates the keys of free-form maps (labels, resources.limits), so a key that was
// neither read nor enumerated is one the schema does not know.

interface KubeModel { prototype: { validate: () => void } }

/** The kinds the lab accepts, with their apiVersion and schema. */
export const KUBE_KINDS: Readonly<Record<string, { apiVersion: string, model: KubeModel, namespaced: boolean }>> = Object.freeze({
  Node: { apiVersion: 'v1', model: Node, namespaced: false },
  Namespace: { apiVersion: 'v1', model: Namespace, namespaced: false },
  Pod: { apiVersion: 'v1', model: Pod, namespaced: true },
  Service: { apiVersion: 'v1', model: Service, namespaced: true }
})

export interface SchemaIssue {
  readonly path: FieldPath
  readonly message: string
  /** True for an unknown field: the rest of the object is still well-typed. */
  readonly unknown?: boolean
}

interface AjvError { instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }

export function validateAgainstSchema (kind: string, value: unknown): SchemaIssue[] {
  const entry = KUBE_KINDS[kind]
  if (entry === undefined) throw new Error(`no schema for kind ${kind}`)
  const records: Recorded[] = []
  const tracked = track(value, [], records)
  const issues: SchemaIssue[] = []
  try {
    // setValidateFunc() installs validate() as `runValidateFunc(schemaFn, this)`: calling
    // it on our proxy validates the proxy itself, not a copy.
    entry.model.prototype.validate.call(tracked)
  } catch (err) {
    const errors = (err as { errors?: AjvError[] }).errors
    if (errors === undefined) throw err
    for (const e of errors) issues.push(fromAjv(e))
  }
  for (const r of records) {
    if (r.enumerated) continue
    for (const key of Object.keys(r.value)) {
      if (!r.read.has(key)) issues.push({ path: [...r.path, key], message: `unknown field "${key}"`, unknown: true })
    }
  }
  return issues
}

interface Recorded {
  readonly path: FieldPath
  readonly value: Record<string, unknown>
  readonly read: Set<string>
  enumerated: boolean
}

function track (value: unknown, path: FieldPath, records: Recorded[]): unknown {
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v, i) => track(v, [...path, i], records))
  const obj = value as Record<string, unknown>
  const rec: Recorded = { path, value: obj, read: new Set(), enumerated: false }
  records.push(rec)
  const copy: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) copy[k] = track(v, [...path, k], records)
  return new Proxy(copy, {
    get (target, key, receiver) {
      if (typeof key === 'string') rec.read.add(key)
      return Reflect.get(target, key, receiver)
    },
    has (target, key) {
      if (typeof key === 'string') rec.read.add(key)
      return Reflect.has(target, key)
    },
    ownKeys (target) {
      rec.enumerated = true
      return Reflect.ownKeys(target)
    }
  })
}

function fromAjv (e: AjvError): SchemaIssue {
  const path: Array<string | number> = e.instancePath.split('/').slice(1)
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((seg) => /^\d+$/.test(seg) ? Number(seg) : seg)
  if (e.keyword === 'required') {
    return { path: [...path, String(e.params.missingProperty)], message: 'required field is missing' }
  }
  if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
    return { path, message: `must be one of ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}` }
  }
  return { path, message: e.message ?? `fails the "${e.keyword}" check` }
}
