import { existsSync, readFileSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { ferryError } from '../errors'
import { addObjects, type AddOptions } from './add-objects'
import { splitFiles, splitText } from './apply-files'
import { requireRoot } from './labs'
import { buildAdditions } from './manifest'
import { manifestError } from './manifest/issues'
import { loadManifestText } from './manifest/load'
import { DEFAULT_NAMESPACE } from './manifest/spec'
import { labApplyTexts, labDelete } from './policies'
import { deleteObjects, resolveDeletion, type ObjectRef, type RemoveOptions } from './remove-objects'
import type { LabState } from './state'

// `ferry lab apply FILE…` and `ferry lab delete FILE…`, by kind: Pods, Services and
// Namespaces are added to or removed from the running lab (src/lab/add-objects.ts,
// src/lab/remove-objects.ts); AuthorizationPolicy and PeerAuthentication documents go
// to or leave the config directory the agents watch (src/lab/policies.ts). Everything
// given is validated before anything changes: the lab's objects against the lab (as
// `up` validates its manifests), the configuration documents as the agents read them.

export interface ApplyFilesResult {
  /** Files written in the config directory. */
  readonly written: readonly string[]
  /** What of the given configuration Ferry enforces narrower than written (src/lab/policies.ts). */
  readonly degraded: readonly string[]
  /** `pod/ns/name`, `service/ns/name`, `namespace/name`. */
  readonly created: readonly string[]
  readonly unchanged: readonly string[]
}

export async function labApplyFiles (state: LabState, files: readonly string[], opts: AddOptions): Promise<ApplyFilesResult> {
  const split = splitFiles(files)
  const additions = split.labFiles.length === 0 ? null : buildAdditions(split.lab, state.spec)
  if (additions !== null) requireRoot('ferry lab apply (of Pods, Services, Namespaces)')
  const { written, degraded } = split.config.length === 0 ? { written: [], degraded: [] } : await labApplyTexts(state.plan, split.config)
  if (additions === null) return { written, degraded, created: [], unchanged: [] }
  const { created } = await addObjects(state.plan.stateFile, additions, opts)
  return { written, degraded, created, unchanged: additions.unchanged.map(kubectlName) }
}

export async function labDeleteFiles (state: LabState, files: readonly string[], opts: RemoveOptions = {}): Promise<{ removed: readonly string[], deleted: readonly string[] }> {
  if (files.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'no FILE given')
  const refs: ObjectRef[] = []
  const configNames: string[] = []
  for (const file of files) {
    // A name that is no file here names a file in the config directory, as before.
    if (!existsSync(file)) { configNames.push(basename(file)); continue }
    const parts = splitText(readFileSync(file, 'utf8'))
    if (parts.config !== null) configNames.push(basename(file))
    if (parts.lab !== null) refs.push(...objectRefs(parts.lab, resolve(file)))
  }
  const deletion = refs.length === 0 ? null : resolveDeletion(state.plan.stateFile, refs)
  if (deletion !== null) requireRoot('ferry lab delete (of Pods, Services, Namespaces)')
  const removed = configNames.length === 0 ? [] : (await labDelete(state.plan, configNames)).removed
  const deleted = deletion === null ? [] : (await deleteObjects(state.plan.stateFile, deletion, opts)).deleted
  return { removed, deleted }
}

/** Which objects a file names (as `kubectl delete -f` reads it: kind, namespace, name). */
function objectRefs (text: string, file: string): ObjectRef[] {
  const loaded = loadManifestText(text, file)
  if (loaded.issues.length > 0) throw manifestError(loaded.issues)
  const out: ObjectRef[] = []
  for (const o of loaded.objects) {
    const v = o.value as Record<string, any>
    const name = v?.metadata?.name
    if (typeof name !== 'string') throw manifestError([{ file, line: o.lineOf(['metadata', 'name']), message: 'metadata.name is required to delete an object' }])
    if (v.kind === 'Node') throw manifestError([{ file, line: o.lineOf(['kind']), object: `Node ${name}`, message: 'nodes cannot be deleted from a running lab (`ferry lab down` removes the lab)' }])
    if (v.kind === 'Namespace') out.push({ kind: 'Namespace', name })
    else out.push({ kind: v.kind, namespace: typeof v.metadata.namespace === 'string' ? v.metadata.namespace : DEFAULT_NAMESPACE, name })
  }
  return out
}

/** `Pod ns/name` → `pod/ns/name`. */
function kubectlName (key: string): string {
  const [kind, rest] = key.split(' ')
  return `${kind.toLowerCase()}/${rest}`
}
