import { deepFreeze } from '../../discovery/model'
import { toNamespace, toNode, toPod, toService, type Reporter } from './convert'
import { formatPath, manifestError, type FieldPath, type ManifestIssue } from './issues'
import { KUBE_KINDS, validateAgainstSchema } from './kube-schema'
import { labRuleIssues } from './lab-rules'
import { loadManifestFiles, type LoadResult, type SourceObject } from './load'
import { crossCheck, objectKey, type Collected } from './references'
import { DEFAULT_NAMESPACE, type LabNamespace, type LabSpec, type Origin } from './spec'

// Manifests in, a frozen LabSpec out — or one FERRY_ERR_MANIFEST listing every problem
// (YAML syntax with file and line; per object: Kubernetes schema, unknown fields, what
// the lab refuses; across objects: duplicates and dangling references). Nothing is
// created before this has passed.

export type { LabSpec } from './spec'

export function readManifests (files: readonly string[], read?: (path: string) => string): LabSpec {
  if (files.length === 0) throw manifestError([{ file: '(command line)', message: 'no manifest files given' }])
  return buildSpec(loadManifestFiles(files, read), files)
}

export function buildSpec (loaded: LoadResult, files: readonly string[]): LabSpec {
  const issues: ManifestIssue[] = [...loaded.issues]
  const c: Collected = { nodes: [], namespaces: [], pods: [], services: [] }
  const firstSeen = new Map<string, Origin>()

  for (const src of loaded.objects) {
    const v = src.value as Record<string, any>
    const origin: Origin = { file: src.file, line: src.lineOf([]) }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      issues.push({ file: src.file, line: origin.line, message: 'a document must be a Kubernetes object (a mapping with apiVersion and kind)' })
      continue
    }
    const kind = v.kind
    const entry = typeof kind === 'string' ? KUBE_KINDS[kind] : undefined
    if (entry === undefined) {
      const known = Object.keys(KUBE_KINDS).join(', ')
      issues.push({ file: src.file, line: src.lineOf(['kind']), message: kind === undefined ? `no kind (the lab takes ${known})` : `unsupported kind "${String(kind)}" (the lab takes ${known})` })
      continue
    }
    const what = describe(kind, entry.namespaced, v)
    const report = (path: FieldPath, message: string): void => { issues.push({ file: src.file, line: src.lineOf(path), object: what, path, message }) }
    const schema = validateAgainstSchema(kind, v)
    for (const i of schema) report(i.path, i.message)
    // Type errors make the object unusable; unknown or refused fields do not, so the
    // checks below still run and every problem shows up in one go.
    if (schema.some((i) => i.unknown !== true)) continue
    const unknown = new Set(schema.map((i) => formatPath(i.path)))
    for (const i of labRuleIssues(kind, v)) if (!unknown.has(formatPath(i.path))) report(i.path, i.message)
    if (typeof v.metadata?.name !== 'string' || v.metadata.name === '') report(['metadata', 'name'], 'is required')
    if (!entry.namespaced && v.metadata?.namespace !== undefined) report(['metadata', 'namespace'], `must not be set: ${kind as string} is not namespaced`)
    if (typeof v.metadata?.name !== 'string' || v.metadata.name === '') continue

    const key = objectKey(kind, entry.namespaced ? (v.metadata.namespace ?? DEFAULT_NAMESPACE) : undefined, v.metadata.name)
    const prior = firstSeen.get(key)
    if (prior !== undefined) {
      report([], `duplicate ${key} (first at ${prior.file}:${prior.line})`)
      continue
    }
    firstSeen.set(key, origin)
    convert(kind, v, { file: src.file, origin, report }, c)
  }

  issues.push(...crossCheck(c, (origin, object, path, message) => ({ file: origin.file, line: lineAt(loaded.objects, origin, path), object, path, message })))
  if (issues.length > 0) throw manifestError(issues)

  const declaredDefault = c.namespaces.some((n) => n.name === DEFAULT_NAMESPACE)
  const implicit: LabNamespace[] = declaredDefault ? [] : [{ name: DEFAULT_NAMESPACE, labels: {}, annotations: {}, declared: false }]
  return deepFreeze({ files: [...files], nodes: c.nodes, namespaces: [...implicit, ...c.namespaces], pods: c.pods, services: c.services })
}

function convert (kind: string, v: Record<string, any>, r: Reporter, c: Collected): void {
  switch (kind) {
    case 'Node': c.nodes.push(toNode(v, r)); break
    case 'Namespace': c.namespaces.push(toNamespace(v, r)); break
    case 'Pod': c.pods.push(toPod(v, r)); break
    case 'Service': c.services.push(toService(v, r)); break
  }
}

function describe (kind: string, namespaced: boolean, v: Record<string, any>): string {
  const name = typeof v.metadata?.name === 'string' ? v.metadata.name : '(unnamed)'
  if (!namespaced) return `${kind} ${name as string}`
  const ns = typeof v.metadata?.namespace === 'string' ? v.metadata.namespace : DEFAULT_NAMESPACE
  return `${kind} ${ns as string}/${name as string}`
}

function lineAt (objects: readonly SourceObject[], origin: Origin, path: FieldPath): number {
  const src = objects.find((o) => o.file === origin.file && o.lineOf([]) === origin.line)
  return src === undefined ? origin.line : src.lineOf(path)
}
