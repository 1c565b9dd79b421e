import { readFileSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'
import { PORTS } from '../config/env'
import { ferryError } from '../errors'
import { type Deadline, sleep } from './clock'
import { tailOf } from './log-tail'
import type { Prober } from './probe'
import { readClusterFile } from './cluster-file'
import { netnsPath, type LabPlan, type PlanController, type PlanPod } from './topology'

// Waiting for a lab to be usable, bounded by a deadline:
//   controller  its address accepts TCP connections, probed from the underlay namespace
//           (the agents dial it from their nodes, over the same bridge);
//   agents  GET http://127.0.0.1:15021/healthz/ready in the node's namespace answers 200
//           with every meshed pod of the node among `enrolled`;
//   pods    every container process alive for a moment, and every declared
//           containerPort accepting connections on the pod IP (probed from inside the pod);
//   kubelets  each pod's node's kubelet has published it Running in cluster.json (its
//           readiness is the probes' business, not waited for).
// A process that exits meanwhile fails the wait at once, with the end of its log.

/** A container must have been running this long to count as started (catches commands that exit at once). */
export const MIN_RUNNING_MS = 500
const POLL_MS = 100
const PROBE_TIMEOUT_MS = 1000
export const READY_PATH = '/healthz/ready'

/** A process `up` started and watches: whether and how it ended, and where it logs. */
export class Watched {
  exit: { code: number | null, signal: NodeJS.Signals | null } | null = null
  error: Error | null = null
  readonly startedAt = Date.now()

  constructor (readonly what: string, readonly log: string, child: ChildProcess) {
    child.once('exit', (code, signal) => { this.exit = { code, signal } })
    child.once('error', (err) => { this.error = err })
  }

  get ended (): boolean { return this.exit !== null || this.error !== null }
}

function exitedError (w: Watched): Error {
  const how = w.error !== null ? `could not start: ${w.error.message}` : w.exit?.signal != null ? `was killed by ${w.exit.signal}` : `exited with code ${String(w.exit?.code)}`
  return ferryError('FERRY_ERR_LAB', `${w.what} ${how} before the lab was ready (log: ${w.log})${tailOf(w.log)}`)
}

export async function waitForController (plan: LabPlan, ca: PlanController, controller: Watched, prober: Prober, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  await waitForUnderlayListener(plan, 'the lab\'s controller', ca, controller, prober, deadline, signal)
}

/** A process of the underlay (the controller, the API server) accepts connections on its address, probed from the underlay. */
export async function waitForUnderlayListener (plan: LabPlan, what: string, at: { address: string, port: number, log: string }, process: Watched, prober: Prober, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  const underlay = netnsPath(plan.paths, plan.underlay.netns)
  for (;;) {
    if (process.ended) throw exitedError(process)
    if (await prober.tcp(underlay, at.address, at.port, PROBE_TIMEOUT_MS)) return
    if (process.ended) throw exitedError(process)
    if (deadline.expired) {
      throw ferryError('FERRY_ERR_LAB_TIMEOUT', `${what} does not accept connections on ${at.address}:${at.port} (log: ${at.log})${tailOf(at.log)}`)
    }
    await sleep(POLL_MS, signal)
  }
}

export interface AgentReadiness { ready: boolean, generation?: number, enrolled?: string[] }

export async function waitForAgents (plan: LabPlan, agents: ReadonlyMap<string, Watched>, expected: ReadonlyMap<string, readonly string[]>,
  prober: Prober, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  const pending = new Set(plan.nodes.map((n) => n.name))
  const last = new Map<string, string>()
  while (pending.size > 0) {
    for (const node of plan.nodes) {
      if (!pending.has(node.name)) continue
      const w = agents.get(node.name)
      if (w?.ended === true) throw exitedError(w)
      const reply = await prober.httpGet(netnsPath(plan.paths, node.netns), '127.0.0.1', PORTS.ready, READY_PATH, PROBE_TIMEOUT_MS)
      if (reply === null) { last.set(node.name, 'no answer'); continue }
      last.set(node.name, `${reply.status} ${reply.body.trim().slice(0, 300)}`)
      if (reply.status !== 200) continue
      let body: AgentReadiness
      try {
        body = JSON.parse(reply.body) as AgentReadiness
      } catch {
        continue
      }
      const enrolled = new Set(body.enrolled ?? [])
      const missing = (expected.get(node.name) ?? []).filter((uid) => !enrolled.has(uid))
      if (body.ready && missing.length === 0) pending.delete(node.name)
      else last.set(node.name, `${last.get(node.name) as string} (not yet enrolled: ${missing.join(', ')})`)
    }
    if (pending.size === 0) break
    if (deadline.expired) {
      const lines = [...pending].map((n) => {
        const node = plan.nodes.find((x) => x.name === n)
        return `agent on node ${n}: last answer from ${READY_PATH}: ${last.get(n) ?? 'none'} (log: ${node?.agentLog ?? '?'})`
      })
      throw ferryError('FERRY_ERR_LAB_TIMEOUT', `the lab's agents were not ready in time:\n  ${lines.join('\n  ')}`)
    }
    await sleep(POLL_MS, signal)
  }
}

export async function waitForPods (plan: LabPlan, pods: readonly PlanPod[], containers: ReadonlyMap<string, Watched>, prober: Prober, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  const pending = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p]))
  const why = new Map<string, string>()
  while (pending.size > 0) {
    for (const w of containers.values()) if (w.ended) throw exitedError(w)
    for (const [key, pod] of pending) {
      const young = pod.containers.find((c) => Date.now() - (containers.get(`${key}/${c.name}`)?.startedAt ?? Date.now()) < MIN_RUNNING_MS)
      if (young !== undefined) { why.set(key, `container ${young.name} just started`); continue }
      let closed: { port: number, log: string } | null = null
      for (const c of pod.containers) {
        for (const port of c.ports) {
          if (!await prober.tcp(netnsPath(plan.paths, pod.netns), pod.ipv4, port, PROBE_TIMEOUT_MS)) { closed = { port, log: c.log }; break }
        }
        if (closed !== null) break
      }
      if (closed === null) pending.delete(key)
      else why.set(key, `port ${closed.port} does not accept connections on ${pod.ipv4} (log: ${closed.log})`)
    }
    if (pending.size === 0) break
    if (deadline.expired) {
      const lines = [...pending.keys()].map((k) => `pod ${k}: ${why.get(k) ?? 'not probed yet'}`)
      throw ferryError('FERRY_ERR_LAB_TIMEOUT', `pods were not ready in time:\n  ${lines.join('\n  ')}`)
    }
    await sleep(POLL_MS, signal)
  }
}

/** Every pod published with phase Running by its node's kubelet. */
export async function waitForKubelets (plan: LabPlan, pods: readonly PlanPod[], kubelets: ReadonlyMap<string, Watched>, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  const uids = new Set(pods.map((p) => p.uid))
  let phases = new Map<string, string>()
  for (;;) {
    for (const node of new Set(pods.map((p) => p.node))) {
      const w = kubelets.get(node)
      if (w?.ended === true) throw exitedError(w)
    }
    phases = new Map(readClusterFile(plan.clusterFile).items
      .filter((o) => o.kind === 'Pod' && uids.has(o.metadata?.uid))
      .map((o) => [o.metadata.uid as string, String(o.status?.phase)]))
    if (pods.every((p) => phases.get(p.uid) === 'Running')) return
    if (deadline.expired) {
      const lines = pods.filter((p) => phases.get(p.uid) !== 'Running').map((p) => {
        const log = plan.nodes.find((n) => n.name === p.node)?.kubeletLog ?? '?'
        return `pod ${p.namespace}/${p.name}: published ${phases.get(p.uid) ?? 'nowhere'} (kubelet log: ${log})`
      })
      throw ferryError('FERRY_ERR_LAB_TIMEOUT', `the kubelets did not publish every pod Running in time:\n  ${lines.join('\n  ')}`)
    }
    await sleep(POLL_MS, signal)
  }
}

/** A JSON line of `w`'s log matching `match` (a process announcing it is up), bounded by the deadline. */
export async function waitForLogLine (w: Watched, match: (line: Record<string, any>) => boolean, deadline: Deadline, signal?: AbortSignal): Promise<void> {
  for (;;) {
    if (w.ended) throw exitedError(w)
    let text = ''
    try { text = readFileSync(w.log, 'utf8') } catch { /* not written yet */ }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        if (match(JSON.parse(line) as Record<string, any>)) return
      } catch { /* a line being written */ }
    }
    if (deadline.expired) throw ferryError('FERRY_ERR_LAB_TIMEOUT', `${w.what} did not start in time (log: ${w.log})${tailOf(w.log)}`)
    await sleep(POLL_MS, signal)
  }
}
