import { mkdirSync } from 'node:fs'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ferryError } from '../errors'
import { admitDocuments } from '../resources/admission'
import { hasSelector, resourceKey } from '../resources/documents'
import { ConfigError, type ConfigIssue, formatIssue } from '../resources/issues'
import { type ConfigFile, readConfigFiles, refusedIssues } from '../resources/loader'
import type { ConfigSnapshot } from '../resources/snapshot'
import type { LabPlan } from './topology'

// `ferry lab apply FILE…` / `ferry lab delete FILE…`: the lab's configuration documents
// (policies, routes, traffic policies, rate limits: src/resources/documents.ts) live in one directory, <stateDir>/config/,
// which every node's agent watches (--config-dir). A file is kept there under its base
// name, as `kubectl apply -f` keeps an object under its name.
//
// apply judges the files it is given with src/resources — the same code the agents run —
// object by object, and writes nothing when any of them is bad: an object refused (the
// error names the given file, the line and the field), or one that conflicts with a file
// already in the directory (the same name, or a second namespace-wide
// PeerAuthentication). What is already in the directory never refuses a good given file:
// a bad document there is the agents' to refuse, alone. Objects Ferry enforces narrower
// than written (degraded) are applied, and their notes returned. Each file is then
// written atomically (a temporary hidden file, which the agents ignore, renamed over), so
// an agent never reads half of it.

const CONFIG_EXTENSIONS = /\.(ya?ml|json)$/

/** The directory the lab's agents watch. */
export function labConfigDir (plan: Pick<LabPlan, 'stateDir'>): string {
  return join(plan.stateDir, 'config')
}

/** Where a node's agent keeps its last good configuration (--config-cache): one file per node. */
export function labConfigCache (plan: Pick<LabPlan, 'stateDir'>, node: string): string {
  return join(plan.stateDir, 'config-cache', `${node}.json`)
}

export function makeLabConfigDir (plan: Pick<LabPlan, 'stateDir'>): string {
  const dir = labConfigDir(plan)
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  return dir
}

export interface ApplyResult {
  /** Paths written in the config directory. */
  readonly written: readonly string[]
  /** What of the given objects Ferry enforces narrower than written: `file:line: object: field: reason; effect`. */
  readonly degraded: readonly string[]
}

export async function labApply (plan: Pick<LabPlan, 'stateDir'>, files: readonly string[]): Promise<ApplyResult> {
  return await labApplyTexts(plan, await readGiven(files))
}

/** labApply with the files' texts given (`ferry lab apply` passes the config part of a file that also holds Pods). */
export async function labApplyTexts (plan: Pick<LabPlan, 'stateDir'>, given: readonly ConfigFile[]): Promise<ApplyResult> {
  if (given.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'no FILE given')
  const seen = new Map<string, string>()
  for (const f of given) {
    const name = checkName(f.path)
    const other = seen.get(name)
    if (other !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `${other} and ${f.path} have the same name; the lab keeps files by name`)
    seen.set(name, f.path)
  }
  const dir = makeLabConfigDir(plan)
  const replaced = new Set(given.map((f) => basename(f.path)))
  const kept = (await readConfigFiles(dir)).filter((f) => !replaced.has(basename(f.path)))
  const mine = admitDocuments(given, { origin: 'given files', generation: 0 })
  const issues = [...refusedIssues(mine), ...conflicts(mine, admitDocuments(kept, { origin: dir, generation: 0 }))]
  // A ConfigError naming file, line and field; nothing is written.
  if (issues.length > 0) throw new ConfigError(issues)
  const written: string[] = []
  for (const f of given) {
    const target = join(dir, basename(f.path))
    const tmp = join(dir, `.${basename(f.path)}.${process.pid}.tmp`)
    await writeFile(tmp, f.text, { mode: 0o644 })
    await rename(tmp, target)
    written.push(target)
  }
  return { written, degraded: mine.objects.filter((o) => o.state === 'degraded').flatMap((o) => o.issues.map(formatIssue)) }
}

/** The given objects that clash with the directory's: a name defined there too, a second namespace-wide PeerAuthentication. */
function conflicts (given: ConfigSnapshot, kept: ConfigSnapshot): ConfigIssue[] {
  // A malformed document there names no object that could clash: it is the agents' to refuse.
  const there = new Map(kept.objects.filter((o) => o.key !== null && o.refusal !== 'invalid').map((o) => [o.key as string, o]))
  const out: ConfigIssue[] = []
  for (const o of given.objects) {
    const other = o.key === null ? undefined : there.get(o.key)
    if (other !== undefined) out.push({ file: o.file, line: o.line, object: o.object, path: ['metadata', 'name'], message: `already defined in ${other.file}:${other.line} (delete that file, or apply this one under its name)` })
  }
  const namespaceWide = new Map(kept.peerAuthentications.filter((p) => !hasSelector(p.spec.selector)).map((p) => [p.metadata.namespace, p]))
  for (const p of given.peerAuthentications) {
    const other = hasSelector(p.spec.selector) ? undefined : namespaceWide.get(p.metadata.namespace)
    if (other === undefined || there.has(resourceKey(p.kind, p.metadata.namespace, p.metadata.name))) continue
    out.push({ file: p.origin.file, line: p.origin.line, object: `PeerAuthentication ${p.ref}`, path: ['spec'], message: `a second namespace-wide PeerAuthentication in ${p.metadata.namespace} (${other.ref} in ${other.origin.file}:${other.origin.line} is in force there)` })
  }
  return out
}

export async function labDelete (plan: Pick<LabPlan, 'stateDir'>, files: readonly string[]): Promise<{ removed: readonly string[] }> {
  const dir = labConfigDir(plan)
  const present = new Set((await readConfigFiles(dir).catch(() => [])).map((f) => basename(f.path)))
  const names = files.map((f) => basename(f))
  const missing = names.filter((n) => !present.has(n))
  if (missing.length > 0) throw ferryError('FERRY_ERR_INVALID_ARG', `not applied in this lab: ${missing.join(', ')} (in ${dir}: ${[...present].join(', ') || 'nothing'})`)
  const removed: string[] = []
  for (const n of names) {
    const target = join(dir, n)
    await rm(target, { force: true }) // unlink is atomic: the agents see the file or not
    removed.push(target)
  }
  return { removed }
}

function checkName (path: string): string {
  const name = basename(path)
  if (!CONFIG_EXTENSIONS.test(name) || name.startsWith('.')) throw ferryError('FERRY_ERR_INVALID_ARG', `${path}: the agents read *.yaml, *.yml and *.json files (not hidden)`)
  return name
}

async function readGiven (files: readonly string[]): Promise<ConfigFile[]> {
  if (files.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'no FILE given')
  const out: ConfigFile[] = []
  for (const path of files) {
    checkName(path)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `${path}: cannot read: ${(err as Error).message}`, { cause: err })
    }
    out.push({ path, text })
  }
  return out
}
