import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { execArgv, findPod } from '../exec'
import type { LabState } from '../state'
import { CLIENT_POD, PROGRAMS_DIR, SOAK_NAMESPACE } from './fixture'
import type { SoakPlan } from './plan'

// The soak's load, run by programs/load-client.js inside the client pod (in its cgroup
// and network namespace, so the mesh captures it as the pod's own traffic) and read
// from its report lines. The client bounds itself by the plan's duration; `timeout`
// inside the pod kills it should it not stop (killing `lab exec`'s child would not).

export interface KindCounts {
  readonly ok: number
  readonly failed: number
  /** keep-alive: requests sent on a connection that had served one before. */
  readonly reused: number
  /** Body bytes sent and received. */
  readonly bytes: number
}

export type LoadCounts = Readonly<Record<string, KindCounts>>

interface ReportLine { t: number, final: boolean, counts: Record<string, KindCounts>, errors: string[] }

/** After the duration: time for the requests in flight to end (a bulk request's timeout) and the client to report. */
const STOP_GRACE_MS = 60_000
/** The failure messages kept (the counts count them all). */
const MAX_ERRORS = 200

export class SoakLoad {
  private counts: LoadCounts = {}
  private readonly errorLines: string[] = []
  /** Resolves with the final counts once the client has ended (its own failure to report is an error line). */
  readonly done: Promise<LoadCounts>

  private constructor (private readonly child: ChildProcess, kinds: readonly string[]) {
    this.counts = Object.fromEntries(kinds.map((k) => [k, { ok: 0, failed: 0, reused: 0, bytes: 0 }]))
    let final = false
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (text) => {
      let line: ReportLine
      try { line = JSON.parse(text) as ReportLine } catch { this.error(`load client: ${text.slice(0, 200)}`); return }
      this.counts = line.counts
      for (const e of line.errors) this.error(e)
      if (line.final) final = true
    })
    let stderr = ''
    child.stderr!.on('data', (b: Buffer) => { if (stderr.length < 4000) stderr += b.toString() })
    this.done = new Promise((resolve) => {
      const end = (why: string): void => {
        if (!final) this.error(`load client ${why} without its final report${stderr === '' ? '' : `: ${stderr.trim().slice(-500)}`}`)
        resolve(this.counts)
      }
      child.on('error', (err) => { end(`could not run (${err.message})`) })
      child.on('close', (code, signal) => { lines.close(); end(`exited ${String(code ?? signal)}`) })
    })
  }

  /** Starts the client in the lab's client pod for the plan's duration. */
  static start (state: LabState, plan: SoakPlan): SoakLoad {
    const config = {
      seconds: plan.durationMs / 1000,
      timeoutMs: plan.requestTimeoutMs,
      reportMs: 1000,
      kinds: plan.kinds.map((k) => ({ name: k.name, mode: k.mode, url: `http://${k.service}:8080${k.path}`, workers: k.workers, intervalMs: k.intervalMs, bytes: k.bytes }))
    }
    const killAfterS = Math.ceil((plan.durationMs + STOP_GRACE_MS) / 1000)
    const cmd = ['timeout', '-s', 'KILL', String(killAfterS), process.execPath, join(PROGRAMS_DIR, 'load-client.js'), JSON.stringify(config)]
    const argv = execArgv(state, { kind: 'pod', namespace: SOAK_NAMESPACE, name: CLIENT_POD }, cmd)
    const cwd = findPod(state, SOAK_NAMESPACE, CLIENT_POD).containers[0].workingDir
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd })
    return new SoakLoad(child, plan.kinds.map((k) => k.name))
  }

  /** The cumulative counts of the client's latest report. */
  latest (): LoadCounts { return this.counts }

  /** Failure messages so far (at most MAX_ERRORS). */
  errors (): readonly string[] { return this.errorLines }

  /** Asks the client to stop early (it reports its final counts). */
  stop (): void { this.child.kill('SIGTERM') }

  private error (line: string): void {
    if (this.errorLines.length < MAX_ERRORS) this.errorLines.push(line)
  }
}
