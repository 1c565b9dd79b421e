import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from '../../native'
import { execArgv, findPod } from '../exec'
import type { LabState } from '../state'

// The traffic of a churn run's surviving pods: examples/churn/client.js in each client
// pod (its cgroup and netns, as `ferry lab exec` runs it, so the agent captures it),
// holding keep-alive connections to the Service `backend` and sending requests on them
// until stop() closes its standard input. Each client prints one JSON report at the end.

export const CHURN_EXAMPLE_DIR = join(REPO_ROOT, 'examples', 'churn')

export interface SurvivorReport {
  readonly pod: string
  readonly requests: number
  readonly ok: number
  /** Failed requests, connections made beyond the first ones, connections that closed during the run. */
  readonly failed: number
  readonly errors: Readonly<Record<string, number>>
  /** Connections the client made (each held open throughout when nothing failed). */
  readonly connections: number
  readonly connectionsClosed: number
  readonly servedBy: Readonly<Record<string, number>>
  readonly seconds: number
}

export interface SurvivorOptions {
  /** `namespace/name` of each client pod. */
  readonly clients: readonly string[]
  readonly url: string
  /** Keep-alive connections per client. */
  readonly connections: number
  /** Pause between two requests of one connection. */
  readonly pauseMs: number
  /** Bounds: a client stops by itself after this long or this many requests. */
  readonly maxSeconds: number
  readonly maxRequests: number
}

export interface Survivors {
  /** Ends the traffic; each client's report (a client that died is a report of its failure). */
  stop (): Promise<SurvivorReport[]>
}

const STOP_TIMEOUT_MS = 30_000

export function startSurvivors (state: LabState, o: SurvivorOptions): Survivors {
  const env = { URL: o.url, CONNECTIONS: String(o.connections), PAUSE_MS: String(o.pauseMs), MAX_SECONDS: String(o.maxSeconds), MAX_REQUESTS: String(o.maxRequests) }
  const running = o.clients.map((key) => {
    const [namespace, name] = key.split('/')
    const pod = findPod(state, namespace, name)
    const argv = execArgv(state, { kind: 'pod', namespace, name }, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, join(CHURN_EXAMPLE_DIR, 'client.js')])
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], cwd: pod.containers[0].workingDir })
    return { key, child, done: collect(key, child) }
  })
  return {
    stop: async () => {
      for (const r of running) r.child.stdin?.end()
      // A client that does not finish in time is killed: its report is then one of failure.
      const timer = setTimeout(() => { for (const r of running) r.child.kill('SIGKILL') }, STOP_TIMEOUT_MS)
      try {
        return await Promise.all(running.map(async (r) => await r.done))
      } finally {
        clearTimeout(timer)
      }
    }
  }
}

/** The client's report once it exits (or a report of one failure saying why there is none). */
async function collect (pod: string, child: ChildProcess): Promise<SurvivorReport> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr?.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  child.stdin?.on('error', () => {}) // a client that exited already: its report says so
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => { resolve(null) })
    child.on('exit', (c) => { resolve(c) })
  })
  const line = stdout.trim().split('\n').pop() ?? ''
  try {
    return { pod, ...(JSON.parse(line) as Omit<SurvivorReport, 'pod'>) }
  } catch {
    const why = `client exited ${String(code)} without a report: ${stderr.trim().slice(-300)}`
    return { pod, requests: 0, ok: 0, failed: 1, errors: { [why]: 1 }, connections: 0, connectionsClosed: 0, servedBy: {}, seconds: 0 }
  }
}
