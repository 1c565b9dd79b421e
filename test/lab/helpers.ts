import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labDown, leftovers } from '../../src/lab/down'
import { defaultPaths } from '../../src/lab/labs'
import { readState } from '../../src/lab/state'

// Shared by the lab tests: running `ferry lab` (built, or from source when the build is stale), and what a lab leaves on the
// host (unique lab names: test/helpers/names.ts).

export const REPO = join(__dirname, '..', '..')
export const FIXTURES = join(__dirname, 'fixtures')
export const IS_ROOT = process.getuid?.() === 0
export const ROOT_ONLY = IS_ROOT ? {} : { skip: 'needs root (network namespaces, cgroups)' }

/** tap's TypeScript loader, as given to this test process. */
function tsLoader (): string {
  const arg = process.execArgv.find((a) => a.includes('@tapjs/typescript'))
  return arg ?? `--import=${join(REPO, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')}`
}

/**
 * argv running Ferry's CLI for the lab tests: the built CLI (bin/ferry.js) when dist/ holds a
 * build at least as new as every source file, else the TypeScript sources through tap's
 * loader. Both run the same code; the build starts an agent several times faster (the
 * loader compiles every module again in the agent and in each of its worker threads, which
 * on a busy 2-core machine took most of a 60 s `up`), and the check means an edit to src/
 * made without a rebuild is still what runs.
 */
export function labFerryArgv (): string[] {
  if (isBuildCurrent()) return [process.execPath, join(REPO, 'bin', 'ferry.js')]
  return ['env', 'TS_NODE_TRANSPILE_ONLY=1', process.execPath, tsLoader(), join(FIXTURES, 'ferry.ts')]
}

let buildCurrent: boolean | undefined
/** Every src/**\/*.ts has its dist/src/**\/*.js, written no earlier than the source was last changed. */
export function isBuildCurrent (): boolean {
  buildCurrent ??= (function walk (dir: string): boolean {
    for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name)
      if (e.isDirectory()) { if (!walk(rel)) return false; continue }
      if (!e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) continue
      const built = join(REPO, 'dist', rel.replace(/\.ts$/, '.js'))
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(REPO, rel)).mtimeMs) return false
    }
    return true
  })('src')
  return buildCurrent
}

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs `ferry lab ARGS…` from source; bounded by a timeout. */
export async function labCli (args: readonly string[], timeoutMs = 90_000): Promise<CliResult> {
  const [cmd, ...rest] = labFerryArgv()
  return await new Promise((resolve) => {
    const child = spawn(cmd, [...rest, 'lab', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }) })
  })
}

/** Runs argv to completion with captured output (for commands built by src/lab/exec.ts). */
export function runArgv (argv: readonly string[], timeoutMs = 20_000): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs })
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** A manifest file in a fresh temporary directory (its dir is the containers' default workingDir). */
export function manifestFile (yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-lab-test-'))
  const file = join(dir, 'lab.yaml')
  writeFileSync(file, yaml)
  return file
}

/** Everything of the lab on the host, including processes still alive from its recorded pids. */
export function everythingLeft (name: string, pids: readonly number[] = []): string[] {
  const left = leftovers(name)
  for (const pid of pids) {
    if (isAlive(pid)) left.push(`process ${pid}`)
  }
  // veths are only ever made inside lab namespaces; none may show up in the host's.
  const hostLinks = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout
  for (const line of hostLinks.split('\n')) if (/^\d+: (vp\d+|vn\d+)[@:]/.test(line)) left.push(`host link ${line.split(':')[1].trim()}`)
  return left
}

function isAlive (pid: number): boolean {
  try {
    // A zombie waiting for its reaper is dead for our purposes.
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')
  } catch {
    return false
  }
}

/** Pids the lab recorded (agents and containers). */
export function recordedPids (name: string): number[] {
  const state = readState(join(defaultPaths().labStateDir, name, 'state.json'))
  return state === null ? [] : Object.values(state.pids)
}

/** Best-effort removal for t.teardown: never throws. */
export async function forceDown (name: string): Promise<void> {
  try { await labDown(name) } catch { /* the test's own assertions report leftovers */ }
}

export function isMeshBuilt (): boolean {
  return existsSync(join(REPO, 'build', 'Release', 'ferry_native.node')) && existsSync(join(REPO, 'build', 'bpf'))
}
