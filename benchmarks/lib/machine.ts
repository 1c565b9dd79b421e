import { cpus, totalmem, release } from 'node:os'
import { exec, REPO } from './exec'

// The machine a run was measured on, recorded with every result.

export interface Machine {
  readonly cores: number
  readonly cpuModel: string
  readonly memoryGiB: number
  readonly kernel: string
  readonly node: string
  readonly haproxy: string
  readonly nginx: string
  readonly h2load: string
  readonly curl: string
  readonly openssl: string
  readonly gitCommit: string
  readonly gitDirty: boolean
}

async function firstLine (cmd: string, args: string[], pattern: RegExp): Promise<string> {
  try {
    const r = await exec(cmd, args, { timeoutMs: 10_000 })
    const m = pattern.exec(r.stdout + r.stderr)
    return m === null ? 'unknown' : m[1]
  } catch { return 'missing' }
}

export async function describeMachine (): Promise<Machine> {
  const git = await exec('git', ['rev-parse', 'HEAD'], { timeoutMs: 10_000, cwd: REPO })
  const dirty = await exec('git', ['status', '--porcelain'], { timeoutMs: 10_000, cwd: REPO })
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    haproxy: await firstLine('haproxy', ['-v'], /HAProxy version (\S+)/),
    nginx: await firstLine('nginx', ['-v'], /nginx\/(\S+)/),
    h2load: await firstLine('h2load', ['--version'], /nghttp2\/(\S+)/),
    curl: await firstLine('curl', ['--version'], /curl (\S+)/),
    openssl: await firstLine('openssl', ['version'], /OpenSSL (\S+)/),
    gitCommit: git.stdout.trim().slice(0, 12),
    gitDirty: dirty.stdout.trim() !== ''
  }
}
