import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, join, resolve } from 'node:path'
import { admitDocuments } from './admission'
import { ConfigError, type ConfigIssue } from './issues'
import type { ConfigSnapshot, SourceDocument } from './snapshot'

// Reading configuration files, and the two ways to judge them: admitDocuments() object by
// object (admission.ts: what every configuration source does), and buildSnapshot(),
// which also demands that nothing be refused (tests, and tools that want all or nothing).

/** Files a directory contributes: *.yaml, *.yml, *.json, not hidden (a ConfigMap mount's `..data` is skipped, its symlinks followed). */
const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json'])

/** A file's path and text (or one document cut from it, with the line it starts at). */
export type ConfigFile = SourceDocument

export interface BuildOptions {
  readonly origin: string
  readonly generation: number
  readonly rootNamespace?: string
}

/** Admits the files object by object, then throws ConfigError (FERRY_ERR_CONFIG) listing every issue of every refused object. */
export function buildSnapshot (files: readonly ConfigFile[], opts: BuildOptions): ConfigSnapshot {
  const snapshot = admitDocuments(files, opts)
  const issues = refusedIssues(snapshot)
  if (issues.length > 0) throw new ConfigError(issues)
  return snapshot
}

/** Every issue of every refused object, by file and line. */
export function refusedIssues (snapshot: ConfigSnapshot): ConfigIssue[] {
  return snapshot.objects.filter((o) => o.state === 'refused').flatMap((o) => o.issues).sort(byPlace)
}

/** Reads a directory (or one file) and admits it object by object. Throws ConfigError only when it cannot be read. */
export async function loadResourceDirectory (path: string, opts: { generation?: number, rootNamespace?: string } = {}): Promise<ConfigSnapshot> {
  const origin = resolve(path)
  const files = await readConfigFiles(origin)
  return admitDocuments(files, { origin, generation: opts.generation ?? 1, rootNamespace: opts.rootNamespace })
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
