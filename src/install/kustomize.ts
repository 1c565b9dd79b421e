import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { ferryError } from '../errors'
import { strategicMerge } from './strategic-merge'

// The part of `kustomize build` that daemonset/ uses, so that `ferry install --render`
// prints the same objects as `kubectl kustomize` without needing it: `resources` (files
// and directories holding a kustomization) and `patches` (strategic merge patches by
// file, each naming its target by apiVersion, kind, name and namespace), then kustomize's
// default ("legacy") output order. Any other kustomization field is refused by name, so
// a richer overlay is never rendered wrongly; test/install/manifests.test.ts compares the
// output with `kubectl kustomize` for every overlay.

export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, [k: string]: unknown }
  [k: string]: unknown
}

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches'])

/** kustomize's legacy order: these kinds first, in this order; then the rest; webhooks last. */
const ORDER_FIRST = ['Namespace', 'ResourceQuota', 'StorageClass', 'CustomResourceDefinition', 'ServiceAccount', 'PodSecurityPolicy',
  'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'Secret', 'Endpoints', 'Service', 'LimitRange',
  'PriorityClass', 'PersistentVolume', 'PersistentVolumeClaim', 'Deployment', 'StatefulSet', 'CronJob', 'PodDisruptionBudget']
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']

/** Builds the kustomization in `dir` into a list of objects. Throws FERRY_ERR_CONFIG naming the file and field. */
export function kustomizeBuild (dir: string): KubeObject[] {
  return sortLegacy(build(resolve(dir), []))
}

function build (dir: string, stack: string[]): KubeObject[] {
  if (stack.includes(dir)) throw ferryError('FERRY_ERR_CONFIG', `${dir}: kustomization cycle through ${stack.join(' → ')}`)
  const file = KUSTOMIZATION_FILES.map((f) => join(dir, f)).find((f) => existsSync(f))
  if (file === undefined) throw ferryError('FERRY_ERR_CONFIG', `${dir}: no kustomization.yaml`)
  const k = parseOne(file)
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw ferryError('FERRY_ERR_CONFIG', `${file}: field "${field}" is not supported by Ferry's renderer (it reads ${[...SUPPORTED_FIELDS].join(', ')}); use kubectl kustomize`)
  }
  const objects: KubeObject[] = []
  for (const entry of list(k.resources, file, 'resources')) {
    if (typeof entry !== 'string') throw ferryError('FERRY_ERR_CONFIG', `${file}: resources: entries are paths`)
    const path = join(dir, entry)
    if (!existsSync(path)) throw ferryError('FERRY_ERR_CONFIG', `${file}: resources: ${entry} does not exist`)
    const found = statSync(path).isDirectory() ? build(path, [...stack, dir]) : readObjects(path)
    for (const o of found) {
      if (objects.some((x) => sameId(x, o))) throw ferryError('FERRY_ERR_CONFIG', `${file}: ${describe(o)} is declared twice`)
      objects.push(o)
    }
  }
  for (const entry of list(k.patches, file, 'patches')) {
    const p = entry as Record<string, unknown>
    if (typeof p !== 'object' || p === null || typeof p.path !== 'string' || Object.keys(p).length !== 1) {
      throw ferryError('FERRY_ERR_CONFIG', `${file}: patches: Ferry's renderer takes only { path: FILE } entries (strategic merge, target named in the patch)`)
    }
    const patchFile = join(dir, p.path)
    for (const patch of readObjects(patchFile)) {
      const at = objects.findIndex((o) => sameId(o, patch))
      if (at < 0) throw ferryError('FERRY_ERR_CONFIG', `${patchFile}: the patch of ${describe(patch)} matches no resource`)
      objects[at] = strategicMerge(objects[at], patch, relative(process.cwd(), patchFile))
    }
  }
  return objects
}

function list (value: unknown, file: string, field: string): unknown[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) throw ferryError('FERRY_ERR_CONFIG', `${file}: ${field} must be a list`)
  return value
}

function parseOne (file: string): Record<string, unknown> {
  const [doc, ...rest] = parseFile(file)
  if (doc === undefined || rest.length > 0 || typeof doc !== 'object' || doc === null) throw ferryError('FERRY_ERR_CONFIG', `${file}: expected one YAML mapping`)
  return doc as Record<string, unknown>
}

/** Reads every object of a multi-document YAML file (empty documents skipped). */
export function readObjects (file: string): KubeObject[] {
  return parseFile(file).filter((d) => d !== null).map((d, i) => {
    const o = d as Partial<KubeObject>
    if (typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw ferryError('FERRY_ERR_CONFIG', `${file}: document ${i + 1} is not a Kubernetes object (apiVersion, kind, metadata.name)`)
    }
    return o as KubeObject
  })
}

function parseFile (file: string): unknown[] {
  // YAML 1.1, as kubectl and kustomize read manifests: `defaultMode: 0400` is octal (256).
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' })
  return docs.map((d) => {
    if (d.errors.length > 0) throw ferryError('FERRY_ERR_CONFIG', `${file}: ${d.errors[0].message}`)
    return d.toJS()
  })
}

function group (apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0] : ''
}

function sameId (a: KubeObject, b: KubeObject): boolean {
  return group(a.apiVersion) === group(b.apiVersion) && a.kind === b.kind && a.metadata.name === b.metadata.name &&
    (a.metadata.namespace ?? '') === (b.metadata.namespace ?? '')
}

export function describe (o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace === undefined ? '' : `${o.metadata.namespace}/`}${o.metadata.name}`
}

function rank (kind: string): number {
  const first = ORDER_FIRST.indexOf(kind)
  if (first >= 0) return first
  const last = ORDER_LAST.indexOf(kind)
  return last >= 0 ? ORDER_FIRST.length + 1 + last : ORDER_FIRST.length
}

/** Stable sort by kind rank, then apiVersion, namespace and name (kustomize's legacy order). */
export function sortLegacy (objects: readonly KubeObject[]): KubeObject[] {
  const key = (o: KubeObject): string => `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ''}|${o.metadata.name}`
  return [...objects].sort((a, b) => rank(a.kind) - rank(b.kind) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}
