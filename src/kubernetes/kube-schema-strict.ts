// Strict validation against the Kubernetes OpenAPI schemas compiled by kubernetes-models:
// types, enums and required fields from the model's validate(), plus the unknown-field
// check that validate() does not do and the API server's strict field validation does.
//
// The object is wrapped in Proxies that record which keys the generated validator
// reads; a validator reads every property its schema declares and enumerates the keys
// of free-form maps, so a key neither read nor enumerated is one the schema does not
// know. Used by the lab's manifests (src/lab/manifest/kube-schema.ts) and by the
// install manifests (src/install/validate.ts).

export type FieldPath = ReadonlyArray<string | number>

export interface SchemaIssue {
  readonly path: FieldPath
  readonly message: string
  /** True for an unknown field: the rest of the object is still well-typed. */
  readonly unknown?: boolean
}

/** A kubernetes-models class: its prototype's validate() checks `this`. */
export interface KubeModel { prototype: { validate: () => void } }

interface AjvError { instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }

export interface StrictOptions {
  /** Subtrees whose keys are not checked (their content is checked some other way). */
  readonly opaque?: (path: FieldPath) => boolean
  /** Field names accepted wherever they appear: kubernetes-models drops every property named "description" from its schemas. */
  readonly alsoKnown?: ReadonlySet<string>
}

export function validateStrict (model: KubeModel, value: unknown, opts: StrictOptions = {}): SchemaIssue[] {
  const records: Recorded[] = []
  const tracked = track(value, [], records)
  const issues: SchemaIssue[] = []
  try {
    // kubernetes-models installs validate() as runValidateFunc(schemaFn, this): calling
    // it on the proxy validates the proxy itself, not a copy.
    model.prototype.validate.call(tracked)
  } catch (err) {
    const errors = (err as { errors?: AjvError[] }).errors
    if (errors === undefined) throw err
    for (const e of errors) issues.push(fromAjv(e))
  }
  for (const r of records) {
    if (r.enumerated || opts.opaque?.(r.path) === true || r.path.some((_, i) => opts.opaque?.(r.path.slice(0, i)) === true)) continue
    for (const key of Object.keys(r.value)) {
      if (!r.read.has(key) && opts.alsoKnown?.has(key) !== true) issues.push({ path: [...r.path, key], message: `unknown field "${key}"`, unknown: true })
    }
  }
  return issues
}

export function formatFieldPath (path: FieldPath): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : (out === '' ? seg : `.${seg}`)
  return out === '' ? '(object)' : out
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
  if (e.keyword === 'required') return { path: [...path, String(e.params.missingProperty)], message: 'required field is missing' }
  if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
    return { path, message: `must be one of ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}` }
  }
  return { path, message: e.message ?? `fails the "${e.keyword}" check` }
}
