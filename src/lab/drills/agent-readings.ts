import { readFileSync } from 'node:fs'
import { CONFIG_STREAM_METRIC_NAMES } from '../../agent/config-stream'
import { PORTS } from '../../config/env'
import { IDENTITY_METRIC_NAMES } from '../../identity/metrics'
import { readNodeStatus, type NodeStatus } from '../../status/node-status'
import { getAgentJson, getAgentText, labAgentEndpoint } from '../agent-admin'
import type { LabState } from '../state'

// What a drill reads of each node's agent at one moment: `ferry status`'s view of it,
// its readiness answer (status and the certificates' detail), the certificate and
// configuration-stream metrics, and the process (pid, resident memory).

export interface NodeReading {
  readonly node: string
  readonly at: number
  readonly pid: number | null
  readonly rssBytes: number | null
  readonly status: NodeStatus
  readonly readiness: { readonly status: number, readonly certificates: any } | null
  /** ferry_certificate_renewal_failures_total (null: not on /metrics). */
  readonly renewalFailures: number | null
  /** ferry_certificate_earliest_expiry_seconds (null: not on /metrics). */
  readonly earliestExpirySeconds: number | null
  /** ferry_config_stream_connected: 1 or 0 (null: the agent takes no configuration stream). */
  readonly configStreamConnected: number | null
}

const TIMEOUT_MS = 5000

export async function readNode (state: LabState, node: string): Promise<NodeReading> {
  const at = Date.now()
  const pid = state.pids[`node/${node}`] ?? null
  const endpoint = (): ReturnType<typeof labAgentEndpoint> => labAgentEndpoint(state.name, node)
  const [status, readiness, metrics] = await Promise.all([
    readNodeStatus(node, endpoint(), { timeoutMs: TIMEOUT_MS }),
    withEndpoint(endpoint(), async (e) => await getAgentJson(e, '/healthz/ready', { timeoutMs: TIMEOUT_MS, port: PORTS.ready })),
    withEndpoint(endpoint(), async (e) => await getAgentText(e, '/metrics', { timeoutMs: TIMEOUT_MS }))
  ])
  return {
    node,
    at,
    pid,
    rssBytes: pid === null ? null : rssOf(pid),
    status,
    readiness: readiness === null ? null : { status: readiness.status, certificates: readiness.body?.certificates ?? null },
    renewalFailures: metrics === null ? null : sample(metrics.body, IDENTITY_METRIC_NAMES.renewalFailures),
    earliestExpirySeconds: metrics === null ? null : sample(metrics.body, IDENTITY_METRIC_NAMES.earliestExpiry),
    configStreamConnected: metrics === null ? null : sample(metrics.body, CONFIG_STREAM_METRIC_NAMES.connected)
  }
}

export async function readNodes (state: LabState): Promise<NodeReading[]> {
  return await Promise.all(state.plan.nodes.map(async (n) => await readNode(state, n.name)))
}

async function withEndpoint<T> (e: ReturnType<typeof labAgentEndpoint>, fn: (e: ReturnType<typeof labAgentEndpoint>) => Promise<T>): Promise<T | null> {
  try {
    return await fn(e)
  } catch {
    return null
  } finally {
    e.close()
  }
}

/** The value of the (first) sample `name`, with or without labels, in Prometheus text, or null. */
export function sample (text: string, name: string): number | null {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  return m === null ? null : Number(m[1])
}

function rssOf (pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}
