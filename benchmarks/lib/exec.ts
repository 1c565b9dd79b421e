import { spawn } from 'node:child_process'
import { join } from 'node:path'

// Bounded child processes: every command the suite runs has a time limit and its
// output captured. `ferry` runs the repository's built CLI with this Node.

export const REPO = join(__dirname, '..', '..', '..')
export const FERRY = join(REPO, 'bin', 'ferry.js')

export interface ExecResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

export interface ExecOptions {
  readonly timeoutMs: number
  readonly cwd?: string
}

export async function exec (cmd: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? REPO })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started })
    })
  })
}

/** Like exec(), but a non-zero exit throws with the command's stderr. */
export async function execOk (cmd: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const r = await exec(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.trim().slice(-2000)}`)
  return r
}

export async function ferry (args: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return await execOk(process.execPath, [FERRY, ...args], { timeoutMs })
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
