import { mkdirSync } from 'node:fs'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ferryError } from '../errors'
import { buildSnapshot, type ConfigFile, readConfigFiles } from '../resources/loader'
import type { LabPlan } from './topology'

// `ferry lab apply FILE…` / `ferry lab delete FILE…`: the lab's configuration documents
// (AuthorizationPolicy, PeerAuthentication) live in one directory, <stateDir>/config/,
// which every node's agent watches (--config-dir). A file is kept there under its base
// name, as `kubectl apply -f` keeps an object under its name.
//
// apply validates the directory *as it would become* (the files already there, with the
// given ones added or replacing those of the same name) with src/resources — the same
// code the agents run — and writes nothing when anything is wrong: the error names the
// given file, the line and the field. Each file is then written atomically (a temporary
// hidden file, which the agents ignore, renamed over), so an agent never reads half of it.

const CONFIG_EXTENSIONS = /\.(ya?ml|json)$/

/** The directory the lab's agents watch. */
export function labConfigDir (plan: Pick<LabPlan, 'stateDir'>): string {
  return join(plan.stateDir, 'config')
}

export function makeLabConfigDir (plan: Pick<LabPlan, 'stateDir'>): string {
  const dir = labConfigDir(plan)
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  return dir
}

export interface ApplyResult {
  /** Paths written in the config directory. */
  readonly written: readonly string[]
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
  // Throws a ConfigError naming file, line and field; nothing is written.
  buildSnapshot([...kept, ...given], { origin: dir, generation: 0 })
  const written: string[] = []
  for (const f of given) {
    const target = join(dir, basename(f.path))
    const tmp = join(dir, `.${basename(f.path)}.${process.pid}.tmp`)
    await writeFile(tmp, f.text, { mode: 0o644 })
    await rename(tmp, target)
    written.push(target)
  }
  return { written }
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
