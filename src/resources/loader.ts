import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, join, resolve } from 'node:path'
import { type AuthorizationPolicy, describeResource, hasSelector, type PeerAuthentication, type Resource, RESOURCE_KINDS, type ResourceKind } from './documents'
import { toResource } from './convert'
import { ConfigError, type ConfigIssue } from './issues'
import { CONFIG_DEFAULTS, type ConfigSnapshot, createSnapshot, type LineFinder } from './snapshot'
import { validateResource } from './validate'
import { parseYamlDocuments } from './yaml'

// Files → one ConfigSnapshot, all or nothing. Each file may hold many YAML documents;
// each document is checked against its kind's schema, then the set is checked as a whole
// (no two resources with one name; at most one namespace-wide PeerAuthentication per
// namespace). Any issue anywhere rejects the whole set with every issue listed.

/** Files a directory contributes: *.yaml, *.yml, *.json, not hidden (a ConfigMap mount's `..data` is skipped, its symlinks followed). */
const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json'])

export interface ConfigFile {
  readonly path: string
  readonly text: string
}

export interface BuildOptions {
  readonly origin: string
  readonly generation: number
  readonly rootNamespace?: string
}

/** A resource and the line finder of the document it came from. */
export interface LoadedResource { readonly resource: Resource, readonly lineOf: LineFinder }

/** Parses and validates the files together. Throws ConfigError (FERRY_ERR_CONFIG) listing every issue. */
export function buildSnapshot (files: readonly ConfigFile[], opts: BuildOptions): ConfigSnapshot {
  const rootNamespace = opts.rootNamespace ?? CONFIG_DEFAULTS.rootNamespace
  const issues: ConfigIssue[] = []
  const loaded: LoadedResource[] = []
  for (const f of files) {
    const parsed = parseResourceText(f.text, f.path)
    issues.push(...parsed.issues)
    loaded.push(...parsed.loaded)
  }
  issues.push(...crossChecks(loaded, rootNamespace))
  if (issues.length > 0) throw new ConfigError(issues.sort(byPlace))
  const byName = (a: LoadedResource, b: LoadedResource): number => a.resource.ref < b.resource.ref ? -1 : a.resource.ref > b.resource.ref ? 1 : 0
  loaded.sort(byName)
  return createSnapshot({
    generation: opts.generation,
    origin: opts.origin,
    rootNamespace,
    files: files.map((f) => f.path).sort(),
    authorizationPolicies: loaded.map((l) => l.resource).filter((r): r is AuthorizationPolicy => r.kind === 'AuthorizationPolicy'),
    peerAuthentications: loaded.map((l) => l.resource).filter((r): r is PeerAuthentication => r.kind === 'PeerAuthentication')
  }, new Map(loaded.map((l) => [l.resource, l.lineOf])))
}

/** The resources of one file's text, and its issues (never throws for bad content). */
export function parseResourceText (text: string, file: string): { loaded: LoadedResource[], issues: ConfigIssue[] } {
  const { documents, issues } = parseYamlDocuments(text, file)
  const loaded: LoadedResource[] = []
  for (const doc of documents) {
    const at = (path: ReadonlyArray<string | number>): number => doc.lineOf(path)
    const value = doc.value
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      issues.push({ file, line: at([]), message: 'a document must be a map with apiVersion, kind, metadata and spec' })
      continue
    }
    const v = value as Record<string, unknown>
    const kind = kindOf(v)
    if (typeof kind !== 'string') {
      issues.push({ file, line: at(['kind']), path: ['kind'], message: kind.problem })
      continue
    }
    const object = objectName(kind, v)
    const problems = validateResource(kind, v)
    if (problems.length > 0) {
      for (const p of problems) issues.push({ file, line: at(p.path), object, path: p.path, message: p.message })
      continue
    }
    loaded.push({ resource: toResource(kind, v, { file, line: at([]) }), lineOf: doc.lineOf })
  }
  return { loaded, issues }
}

/** Reads a directory (or one file) and builds its snapshot. Throws ConfigError. */
export async function loadResourceDirectory (path: string, opts: { generation?: number, rootNamespace?: string } = {}): Promise<ConfigSnapshot> {
  const origin = resolve(path)
  const files = await readConfigFiles(origin)
  return buildSnapshot(files, { origin, generation: opts.generation ?? 1, rootNamespace: opts.rootNamespace })
}

/** The config files of a directory, read; a path to a file reads just that file. Throws ConfigError when unreadable. */
export async function readConfigFiles (path: string): Promise<ConfigFile[]> {
  let paths: string[]
  try {
    paths = (await stat(path)).isDirectory() ? await listConfigFiles(path) : [path]
  } catch (err) {
    throw unreadable(path, err)
  }
  const out: ConfigFile[] = []
  for (const p of paths) {
    try {
      out.push({ path: p, text: await readFile(p, 'utf8') })
    } catch (err) {
      // Removed between listing and reading: the watcher will see the next state.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw unreadable(p, err)
    }
  }
  return out
}

export async function listConfigFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await readdir(dir)) {
    if (name.startsWith('.') || !CONFIG_EXTENSIONS.has(extname(name).toLowerCase())) continue
    const p = join(dir, name)
    try {
      if ((await stat(p)).isFile()) out.push(p)
    } catch { /* a dangling symlink or a file that just went away */ }
  }
  return out.sort()
}

/** By file, then line (stable: issues of one line keep their order). */
function byPlace (a: ConfigIssue, b: ConfigIssue): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1
  return (a.line ?? 0) - (b.line ?? 0)
}

function unreadable (path: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code
  return new ConfigError([{ file: path, message: `cannot read (${code ?? (err as Error).message})` }], { cause: err, errno: code })
}

function kindOf (v: Record<string, unknown>): ResourceKind | { problem: string } {
  const kind = v.kind
  if (typeof kind !== 'string' || kind === '') return { problem: 'is required (AuthorizationPolicy or PeerAuthentication)' }
  if ((RESOURCE_KINDS as readonly string[]).includes(kind)) return kind as ResourceKind
  const group = typeof v.apiVersion === 'string' ? v.apiVersion : ''
  if (group.includes('istio.io/')) return { problem: `${JSON.stringify(kind)} (${group}) is not supported by Ferry; Ferry reads ${RESOURCE_KINDS.join(' and ')}` }
  return { problem: `${JSON.stringify(kind)} is not a Ferry configuration kind (known: ${RESOURCE_KINDS.join(', ')})` }
}

function objectName (kind: string, v: Record<string, unknown>): string {
  const md = v.metadata as Record<string, unknown> | undefined
  const name = typeof md?.name === 'string' ? md.name : '(unnamed)'
  return typeof md?.namespace === 'string' ? `${kind} ${md.namespace}/${name}` : `${kind} ${name}`
}

function crossChecks (loaded: readonly LoadedResource[], rootNamespace: string): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const seen = new Map<string, Resource>()
  const namespaceWide = new Map<string, PeerAuthentication>()
  for (const { resource: r, lineOf } of loaded) {
    const where = (other: Resource): string => `${other.origin.file}:${other.origin.line}`
    const key = `${r.kind}/${r.ref}`
    const first = seen.get(key)
    if (first !== undefined) {
      issues.push({ file: r.origin.file, line: lineOf(['metadata', 'name']), object: describeResource(r), path: ['metadata', 'name'], message: `defined twice (also at ${where(first)})` })
      continue
    }
    seen.set(key, r)
    if (r.kind !== 'PeerAuthentication') continue
    const ns = r.metadata.namespace
    if (hasSelector(r.spec.selector)) {
      if (ns === rootNamespace) {
        issues.push({
          file: r.origin.file, line: lineOf(['spec', 'selector']), object: describeResource(r), path: ['spec', 'selector'],
          message: `a PeerAuthentication with a selector in the root namespace (${rootNamespace}) applies to nothing (as in Istio): move it to the workload's namespace, or drop the selector to make it mesh-wide`
        })
      }
      continue
    }
    const other = namespaceWide.get(ns)
    if (other !== undefined) {
      const scope = ns === rootNamespace ? 'mesh-wide' : `namespace-wide PeerAuthentication in ${ns}`
      issues.push({
        file: r.origin.file, line: lineOf(['metadata', 'name']), object: describeResource(r), path: ['metadata', 'name'],
        message: `a second ${scope === 'mesh-wide' ? 'mesh-wide PeerAuthentication' : scope} (the other is ${other.ref} at ${where(other)}); Istio would use the oldest, Ferry needs exactly one`
      })
      continue
    }
    namespaceWide.set(ns, r)
  }
  return issues
}
