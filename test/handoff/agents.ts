import { type ChildProcess, spawn } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { REPO } from '../helpers/cli'
import { waitFor } from '../helpers/wait'

// Stand-in agents for the handoff tests: test/fixtures/handoff-agent.js run as real
// processes on the built code (dist/), their stdout events collected, and a TCP client
// that says which process answered.

export const FIXTURE = join(REPO, 'test', 'fixtures', 'handoff-agent.js')
export const DIST = join(REPO, 'dist')

export interface Event { event: string, pid: number, [k: string]: any }

export class StandIn {
  readonly events: Event[] = []
  readonly child: ChildProcess
  #stderr = ''

  constructor (t: Test, args: string[], opts: { uid?: number, gid?: number } = {}) {
    this.child = spawn(process.execPath, [FIXTURE, DIST, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...opts })
    let buf = ''
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        try { this.events.push(JSON.parse(line)) } catch { this.#stderr += `stdout: ${line}\n` }
      }
    })
    this.child.stderr?.on('data', (d: Buffer) => { this.#stderr += d.toString() })
    t.teardown(async () => { await this.stop() })
  }

  get pid (): number { return this.child.pid as number }

  /** The first event of that name (waits for it, bounded). */
  async event (name: string, timeoutMs = 10_000): Promise<Event> {
    return await waitFor(() => this.events.find((e) => e.event === name), { timeoutMs, what: `event "${name}" of ${this.pid} (events: ${JSON.stringify(this.events)}; stderr: ${this.#stderr.slice(-2000)})` })
  }

  has (name: string): boolean { return this.events.some((e) => e.event === name) }

  send (command: string): void { this.child.stdin?.write(`${command}\n`) }

  async stop (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill(signal)
    await exited
  }
}

export type Answer = { by: 'old' | 'new', pid: number } | { error: string }

/** One TCP connection to 127.0.0.1:port: who answered, or what went wrong (refused, reset, timeout, an empty answer). */
export async function ask (port: number, timeoutMs = 5_000): Promise<Answer> {
  return await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    let text = ''
    const timer = setTimeout(() => { s.destroy(); resolve({ error: 'timeout' }) }, timeoutMs)
    s.on('data', (d) => { text += d.toString() })
    s.on('error', (err: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ error: err.code ?? err.message }) })
    s.on('end', () => {
      clearTimeout(timer)
      const m = /^(old|new) (\d+)\n$/.exec(text)
      resolve(m === null ? { error: `answer ${JSON.stringify(text)}` } : { by: m[1] as 'old' | 'new', pid: Number(m[2]) })
    })
  })
}
