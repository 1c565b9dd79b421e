import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { ferryError } from '../errors'
import type { ConfigFile } from '../resources/loader'
import { KUBE_KINDS } from './manifest/kube-schema'
import { loadManifestText, type LoadResult } from './manifest/load'

// `ferry lab apply` / `delete` take Kubernetes objects (Pod, Service, Namespace — the
// lab's kinds) and Ferry's configuration documents (AuthorizationPolicy,
// PeerAuthentication, the routes, RateLimit) in the same files, as `kubectl apply -f` would. Each file is split
// by kind: the lab's objects go to the manifest stage, the rest to the config
// directory. A file's other part is blanked line by line (its `---` separators kept), so
// every problem is still reported at its line in the file as written. A file with no
// object of the lab's kinds goes to the config directory whole, as before.

export interface SplitFiles {
  /** The lab's objects, with where each was written. */
  readonly lab: LoadResult
  /** Files (or their config part) for the config directory, under their own paths. */
  readonly config: readonly ConfigFile[]
  /** The given paths whose lab objects were taken. */
  readonly labFiles: readonly string[]
}

export function splitFiles (paths: readonly string[], read: (path: string) => string = (p) => readFileSync(p, 'utf8')): SplitFiles {
  if (paths.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'no FILE given')
  const lab: LoadResult = { objects: [], issues: [] }
  const config: ConfigFile[] = []
  const labFiles: string[] = []
  for (const path of paths) {
    let text: string
    try {
      text = read(path)
    } catch (err) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `${path}: cannot read: ${(err as Error).message}`, { cause: err })
    }
    const parts = splitText(text)
    if (parts.lab === null) {
      config.push({ path, text })
      continue
    }
    labFiles.push(path)
    const loaded = loadManifestText(parts.lab, resolve(path))
    lab.objects.push(...loaded.objects)
    lab.issues.push(...loaded.issues)
    if (parts.config !== null) config.push({ path, text: parts.config })
  }
  return { lab, config, labFiles }
}

/** The text's lab part and config part (each null when empty), line numbers kept. */
export function splitText (text: string): { lab: string | null, config: string | null } {
  const docs = parseAllDocuments(text)
  const list = Array.isArray(docs) ? docs : []
  const labRanges: Array<[number, number]> = []
  const configRanges: Array<[number, number]> = []
  for (const doc of list) {
    const range = doc.contents?.range
    if (range == null) continue
    let value: unknown = null
    try { value = doc.toJS({ maxAliasCount: 100 }) } catch { /* reported by whoever parses the part */ }
    ;(isLabKind(value) ? labRanges : configRanges).push([range[0], range[2]])
  }
  if (labRanges.length === 0) return { lab: null, config: text }
  return { lab: blank(text, configRanges), config: configRanges.length === 0 ? null : blank(text, labRanges) }
}

function isLabKind (value: unknown): boolean {
  const v = value as { kind?: unknown, items?: unknown[] } | null
  if (v === null || typeof v !== 'object') return false
  if (v.kind === 'List' && Array.isArray(v.items)) return v.items.some(isLabKind)
  return typeof v.kind === 'string' && Object.hasOwn(KUBE_KINDS, v.kind)
}

/** Every character of the ranges but newlines removed: the same lines, empty. */
function blank (text: string, ranges: ReadonlyArray<[number, number]>): string {
  let out = ''
  let at = 0
  for (const [from, to] of [...ranges].sort((a, b) => a[0] - b[0])) {
    out += text.slice(at, from) + text.slice(from, to).replace(/[^\n]/g, '')
    at = to
  }
  return out + text.slice(at)
}
