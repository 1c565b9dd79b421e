import { execFile, spawnSync } from 'node:child_process'
import { join } from 'node:path'

// Runs the real `ferry` CLI (the built bin/ferry.js) as a child process, the way a
// user would, and returns its exit code and output. Bounded by a timeout.
export const REPO = join(__dirname, '..', '..')
export const FERRY = join(REPO, 'bin', 'ferry.js')

export interface RunResult { code: number, stdout: string, stderr: string }

export async function ferry (args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [FERRY, ...args], { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as any).code === 'number' ? (err as any).code as number : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** Like ferry() but fails loudly, with the CLI's stderr in the message. */
export async function ferryOk (args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await ferry(args, opts)
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`)
  return r.stdout
}

/** Synchronous shell helper for assertions on the host (ip netns list, bpftool …). */
export function sh (cmd: string): string {
  const r = spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8', timeout: 30_000 })
  return (r.stdout ?? '') + (r.stderr ?? '')
}
