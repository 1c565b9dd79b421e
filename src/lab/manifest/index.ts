import { deepFreeze } from '../../discovery/model'
import { toNamespace, toNode, toPod, toService, type Reporter } from './convert'
import { formatPath, manifestError, type FieldPath, type ManifestIssue } from './issues'
import { KUBE_KINDS, validateAgainstSchema } from './kube-schema'
import { labRuleIssues } from './lab-rules'
import { loadManifestFiles, type LoadResult, type SourceObject } from './load'
import { crossCheck, objectKey, type Collected } from './references'
import { DEFAULT_NAMESPACE, type LabNamespace, type LabPod, type LabService, type LabSpec, type Origin } from './spec'

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
  const { issues, c } = collect(loaded)
  issues.push(...crossCheck(c, issueAt(loaded)))
  if (issues.length > 0) throw manifestError(issues)

  const declaredDefault = c.namespaces.some((n) => n.name === DEFAULT_NAMESPACE)
  const implicit: LabNamespace[] = declaredDefault ? [] : [{ name: DEFAULT_NAMESPACE, labels: {}, annotations: {}, declared: false }]
  return deepFreeze({ files: [...files], nodes: c.nodes, namespaces: [...implicit, ...c.namespaces], pods: c.pods, services: c.services })
}

/** Objects to add to a running lab (`ferry lab apply`), validated against it. */
export interface LabAdditions {
  readonly namespaces: readonly LabNamespace[]
  readonly pods: readonly LabPod[]
  readonly services: readonly LabService[]
  /** Objects the lab has already, exactly as given: `Pod ns/name`… */
  readonly unchanged: readonly string[]
}

/**
 * Validates objects to add to a running lab whose manifests were `base`, the way `up`
 * validates its manifests, and against what the lab has: nodes and namespaces must
 * exist (in the lab or among the additions), a name the lab has already must come with
 * the very same object (it is then left alone: Pods are immutable, and the lab does not
 * update Services or Namespaces in place — delete them first), and the lab's limits
 * hold. Nodes cannot be added. Throws one FERRY_ERR_MANIFEST listing every problem.
 */
export function buildAdditions (loaded: LoadResult, base: LabSpec): LabAdditions {
  const { issues, c } = collect(loaded)
  const unchanged: string[] = []
  for (const n of c.nodes) issues.push({ file: n.origin.file, line: n.origin.line, object: `Node ${n.name}`, message: 'nodes cannot be added to a running lab (they are made by `ferry lab up`)' })
  const existing = <T extends { name: string, namespace?: string }>(kind: string, have: readonly T[], given: T[], origin: (x: T) => Origin): T[] => given.filter((x) => {
    const same = have.find((h) => h.name === x.name && h.namespace === x.namespace)
    if (same === undefined) return true
    const key = objectKey(kind, x.namespace, x.name)
    if (sameObject(same, x)) unchanged.push(key)
    else issues.push({ file: origin(x).file, line: origin(x).line, object: key, message: `the lab has ${key} already, different: ${kind === 'Pod' ? 'Pods are immutable' : 'the lab does not update it in place'}; \`ferry lab delete\` it first` })
    return false
  })
  const nsOrigin = (n: LabNamespace): Origin => {
    const src = loaded.objects.find((o) => (o.value as any)?.kind === 'Namespace' && (o.value as any)?.metadata?.name === n.name)
    return { file: src?.file ?? '(given)', line: src?.lineOf([]) ?? 0 }
  }
  const namespaces = existing('Namespace', base.namespaces.filter((n) => n.declared), c.namespaces, nsOrigin)
  const services = existing('Service', base.services, c.services, (x) => x.origin)
  const pods = existing('Pod', base.pods, c.pods, (p) => p.origin)
  // The whole lab as it would become, checked as `up` checks its manifests; only the
  // additions' problems are reported (the lab's own objects passed before).
  const added = new Set<Origin>([...pods, ...services].map((x) => x.origin))
  const all: Collected = { nodes: [...base.nodes], namespaces: [...base.namespaces.filter((n) => n.declared), ...namespaces], pods: [...base.pods, ...pods], services: [...base.services, ...services] }
  const toIssue = issueAt(loaded)
  crossCheck(all, (origin, object, path, message) => {
    const issue = toIssue(origin, object, path, message)
    if (added.has(origin)) issues.push(issue)
    return issue
  })
  if (issues.length > 0) throw manifestError(issues)
  return deepFreeze({ namespaces, pods, services, unchanged })
}

/** Every object checked on its own (schema, lab rules, conversion), and duplicates among them. */
function collect (loaded: LoadResult): { issues: ManifestIssue[], c: Collected } {
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
  return { issues, c }
}

function issueAt (loaded: LoadResult): (origin: Origin, object: string, path: Array<string | number>, message: string) => ManifestIssue {
  return (origin, object, path, message) => ({ file: origin.file, line: lineAt(loaded.objects, origin, path), object, path, message })
}

/** Same object, wherever it was written (origins and defaulted working directories aside). */
function sameObject (a: object, b: object): boolean {
  const strip = (x: object): string => JSON.stringify(x, (k, v: unknown) => k === 'origin' ? undefined : v)
  return strip(a) === strip(b)
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
