import { spawn } from 'node:child_process'
import { ferryError } from '../errors'

// Runs a short command (iproute2, nsenter, sysctl, a CNI plugin) to completion. The lab
// plays the primary CNI plugin here, and CNI plugins drive the same tools; nothing
// long-lived runs through this. Every run has a time limit.

export interface RunOptions {
  /** Written to the command's standard input, then closed. */
  readonly input?: string
  readonly timeoutMs?: number
  /** The command's whole environment; default: this process's. */
  readonly env?: NodeJS.ProcessEnv
}

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export const DEFAULT_RUN_TIMEOUT_MS = 15_000

/** Runs and returns whatever the outcome. */
export async function runRaw (cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(opts.env === undefined ? {} : { env: opts.env }) })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stderr = Buffer.concat(err).toString()
      resolve({ code: signal === null ? code : null, stdout: Buffer.concat(out).toString(), stderr: signal === null ? stderr : `${stderr}(killed by ${signal})` })
    })
    child.stdin.on('error', () => {}) // the command may exit without reading its input
    child.stdin.end(opts.input ?? '')
  })
}

/** Runs and throws FERRY_ERR_LAB (with the command's stderr) unless it exits 0. */
export async function run (cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  let r: RunResult
  try {
    r = await runRaw(cmd, args, opts)
  } catch (e) {
    throw ferryError('FERRY_ERR_LAB', `cannot run ${cmd}: ${(e as Error).message}`, { cause: e, errno: (e as NodeJS.ErrnoException).code })
  }
  if (r.code !== 0) {
    const shown = [cmd, ...args].join(' ')
    const input = opts.input === undefined ? '' : `\n  input:\n    ${opts.input.trim().split('\n').join('\n    ')}`
    throw ferryError('FERRY_ERR_LAB', `\`${shown.length > 200 ? shown.slice(0, 200) + '…' : shown}\` failed (exit ${String(r.code)}): ${r.stderr.trim()}${input}`)
  }
  return r.stdout
}
