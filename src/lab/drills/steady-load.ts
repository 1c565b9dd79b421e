import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ferryError } from '../../errors'
import { REPO_ROOT } from '../../native'
import { Deadline, sleep } from '../clock'
import { execArgv, findPod } from '../exec'
import type { LabState } from '../state'

// A steady load from a lab pod (load-client.ts, run as `ferry lab exec` runs a command:
// the pod's cgroup and namespace, so the mesh captures it), read while it runs: running
// totals once a second. stop() ends it early and returns the last totals.

export interface LoadTotals {
  /** When the client reported them (ms since the epoch). */
  readonly at: number
  readonly requests: number
  readonly failures: number
  readonly errors: ReadonlyArray<{ readonly at: number, readonly error: string }>
  readonly done?: boolean
}

export interface SteadyLoadOptions {
  readonly namespace: string
  readonly pod: string
  readonly url: string
  readonly rate: number
  readonly durationMs: number
  /** Requests per connection before a new one (default 20). */
  readonly perConnection?: number
}

/** The compiled client (the same file whether this module runs compiled or from source). */
const LOAD_CLIENT = join(REPO_ROOT, 'dist', 'src', 'lab', 'drills', 'load-client.js')
const STOP_GRACE_MS = 15_000

export class SteadyLoad {
  private last: LoadTotals = { at: Date.now(), requests: 0, failures: 0, errors: [] }
  private readonly history: LoadTotals[] = []
  private readonly ended: Promise<void>
  private stderr = ''

  private constructor (private readonly child: ChildProcess) {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return
      try {
        const t = JSON.parse(line) as LoadTotals
        this.last = t
        this.history.push(t)
      } catch {}
    })
    child.stderr!.on('data', (d: Buffer) => { if (this.stderr.length < 4096) this.stderr += d.toString() })
    this.ended = new Promise((resolve) => { child.on('exit', () => { resolve() }) })
  }

  static start (state: LabState, o: SteadyLoadOptions): SteadyLoad {
    const argv = execArgv(state, { kind: 'pod', namespace: o.namespace, name: o.pod }, [
      process.execPath, LOAD_CLIENT, '--url', o.url, '--rate', String(o.rate), '--duration-ms', String(o.durationMs),
      '--max-requests', String(Math.ceil(o.rate * o.durationMs / 1000) + 1), '--per-connection', String(o.perConnection ?? 20), '--stop-on-stdin-end'
    ])
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], cwd: findPod(state, o.namespace, o.pod).containers[0].workingDir })
    return new SteadyLoad(child)
  }

  /** The latest running totals. */
  get totals (): LoadTotals { return this.last }

  /** Every report so far, oldest first. */
  get reports (): readonly LoadTotals[] { return this.history }

  /** Resolves once the client has reported `n` requests (it is really sending), or throws after `timeoutMs`. */
  async flowing (n: number, timeoutMs: number): Promise<void> {
    const deadline = new Deadline(timeoutMs)
    while (this.last.requests < n) {
      if (deadline.expired || this.child.exitCode !== null) throw ferryError('FERRY_ERR_LAB', `the load client sent ${this.last.requests} request(s) in ${timeoutMs} ms${this.stderr === '' ? '' : `: ${this.stderr.trim()}`}`)
      await sleep(200)
    }
  }

  /** Ends the load (it finishes the request under way) and returns its final totals. */
  async stop (): Promise<LoadTotals> {
    this.child.stdin!.end()
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, STOP_GRACE_MS)
    await this.ended
    clearTimeout(timer)
    if (this.last.done !== true) throw ferryError('FERRY_ERR_LAB', `the load client ended without its final totals (exit ${String(this.child.exitCode)})${this.stderr === '' ? '' : `: ${this.stderr.trim()}`}`)
    return this.last
  }
}
