import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { formatDuration } from '../../src/identity/duration'
import { getAgentJson, labAgentEndpoint } from '../../src/lab/agent-admin'
import { exec, ferry, FERRY, type ExecResult } from './exec'

// The labs a run uses, through the real `ferry lab` CLI. Names are unique per run
// (`b<role><pid>`), and every lab brought up is registered so the runner can take it
// down on any exit path.

export const LAB_STATE_DIR = '/var/run/ferry/labs'
const UP_TIMEOUT_MS = 300_000

interface StatePod { namespace: string, name: string, node: string, ipv4: string, netns: string }
interface StateNode { name: string, netns: string, ipv4: string }
interface StateService { namespace: string, name: string, clusterIPs: string[] }
interface LabStateFile {
  pids: Record<string, number>
  plan: { mesh: boolean, paths: { netnsDir: string }, nodes: StateNode[], pods: StatePod[], services: StateService[] }
}

export class Lab {
  private constructor (readonly name: string, readonly state: LabStateFile, readonly upMs: number) {}

  static readonly live = new Set<string>()

  /**
   * `workers`: the agents' --workers (absent: the agent's default); `certTtlMs`: the lab's
   * --cert-ttl; `manifest`: one file or several.
   */
  static async up (name: string, manifest: string | readonly string[], opts: { mesh: boolean, sockmapOff?: boolean, workers?: number, certTtlMs?: number }): Promise<Lab> {
    Lab.live.add(name)
    const args = ['lab', 'up', '--name', name, ...(opts.mesh ? [] : ['--no-mesh']), ...(opts.sockmapOff === true ? ['--sockmap', 'off'] : []),
      ...(opts.workers === undefined ? [] : ['--workers', String(opts.workers)]),
      ...(opts.certTtlMs === undefined ? [] : ['--cert-ttl', formatDuration(opts.certTtlMs)]),
      '--timeout', String(UP_TIMEOUT_MS / 1000), ...(typeof manifest === 'string' ? [manifest] : manifest)]
    const r = await ferry(args, UP_TIMEOUT_MS + 30_000)
    const state = JSON.parse(readFileSync(join(LAB_STATE_DIR, name, 'state.json'), 'utf8')) as LabStateFile
    return new Lab(name, state, r.ms)
  }

  static async down (name: string): Promise<void> {
    await exec(process.execPath, [FERRY, 'lab', 'down', name], { timeoutMs: 120_000 })
    Lab.live.delete(name)
  }

  /** Re-reads the state file (pids change when an agent restarts). */
  reload (): LabStateFile { return JSON.parse(readFileSync(join(LAB_STATE_DIR, this.name, 'state.json'), 'utf8')) as LabStateFile }

  pod (namespace: string, name: string): StatePod {
    const p = this.state.plan.pods.find((x) => x.namespace === namespace && x.name === name)
    if (p === undefined) throw new Error(`lab ${this.name}: no pod ${namespace}/${name}`)
    return p
  }

  node (name: string): StateNode {
    const n = this.state.plan.nodes.find((x) => x.name === name)
    if (n === undefined) throw new Error(`lab ${this.name}: no node ${name}`)
    return n
  }

  netnsPath (node: string): string { return join(this.state.plan.paths.netnsDir, this.node(node).netns) }

  serviceIP (namespace: string, name: string): string {
    const s = this.state.plan.services.find((x) => x.namespace === namespace && x.name === name)
    if (s === undefined || s.clusterIPs.length === 0) throw new Error(`lab ${this.name}: no service ${namespace}/${name}`)
    return s.clusterIPs.find((ip) => ip.includes('.')) ?? s.clusterIPs[0]
  }

  /** Agent pids by node (empty without the mesh). */
  agentPids (): number[] {
    const pids = this.reload().pids
    return Object.entries(pids).filter(([k]) => k.startsWith('node/')).map(([, v]) => v)
  }

  agentPid (node: string): number {
    const pid = this.reload().pids[`node/${node}`]
    if (pid === undefined) throw new Error(`lab ${this.name}: no agent on ${node}`)
    return pid
  }

  /** GET `path` from `node`'s agent admin port, with the lab's admin token (/debug/* needs it); the JSON body. */
  async adminJson (node: string, path: string): Promise<unknown> {
    const endpoint = labAgentEndpoint(this.name, node)
    try {
      const r = await getAgentJson(endpoint, path, { timeoutMs: 5000 })
      if (r.status !== 200) throw new Error(`lab ${this.name}: ${path} on ${node} answered ${r.status}: ${JSON.stringify(r.body)}`)
      return r.body
    } finally {
      endpoint.close()
    }
  }

  /** The data-path workers `node`'s agent runs (its /debug/workers). */
  async workerCount (node: string): Promise<number> {
    const workers = (await this.adminJson(node, '/debug/workers') as { workers?: unknown[] }).workers
    if (!Array.isArray(workers)) throw new Error(`lab ${this.name}: /debug/workers on ${node} lists no workers`)
    return workers.length
  }

  async execPod (namespace: string, pod: string, argv: readonly string[], timeoutMs: number): Promise<ExecResult> {
    return await exec(process.execPath, [FERRY, 'lab', 'exec', '--lab', this.name, '-n', namespace, pod, '--', ...argv], { timeoutMs })
  }

  /** Runs argv in the underlay's network namespace (an address that is no node: 172.30.0.254). */
  async execUnderlay (argv: readonly string[], timeoutMs: number): Promise<ExecResult> {
    return await exec(process.execPath, [FERRY, 'lab', 'exec', '--lab', this.name, '--underlay', '--', ...argv], { timeoutMs })
  }

  async execNode (node: string, argv: readonly string[], timeoutMs: number): Promise<ExecResult> {
    return await exec(process.execPath, [FERRY, 'lab', 'exec', '--lab', this.name, '--node', node, '--', ...argv], { timeoutMs })
  }
}
