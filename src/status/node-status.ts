import { PORTS } from '../config/env'
import { isFerryError } from '../errors'
import { getAgentJson, type AgentEndpoint } from '../lab/agent-admin'

// One node's agent as `ferry status` shows it, read from the agent's own endpoints:
// readiness (:15021 /healthz/ready: ready, generations, certificate readiness),
// /debug/pods (the enrolled pods) and /debug/certificates (each identity's certificate
// and renewal). An agent that does not answer is a row saying so, not a failure of the
// whole command.

export interface NodeCertificate {
  readonly spiffeId: string
  readonly serial: string | null
  readonly notAfter: string | null
  readonly expiresInSeconds: number | null
  readonly expired: boolean
  readonly nextAttemptAt: string | null
  readonly lastAttempt: { readonly at: string, readonly ok: boolean } | null
  /** Failed requests since the last success (null: the last one succeeded). */
  readonly failures: { readonly count: number, readonly since: string, readonly code: string, readonly error: string } | null
}

export interface NodeStatus {
  readonly node: string
  /** Where it was asked ("node1 of lab shop (127.0.0.1:15020 in netns …)"). */
  readonly endpoint: string
  /** False when the agent did not answer: `error` says why and the rest is empty. */
  readonly reachable: boolean
  readonly error?: string
  readonly ready: boolean
  /** Why not ready, when the agent says (draining, a handoff, configuration, certificates). */
  readonly notReady: string[]
  readonly pods: ReadonlyArray<{ readonly namespace: string, readonly name: string }>
  readonly pendingPods: number
  /** The configuration in force (null: the agent has no configuration source). */
  readonly configGeneration: number | null
  /** The cluster snapshot the agent enrolled from. */
  readonly clusterGeneration: number | null
  /** Null: the agent runs without a CA. */
  readonly certificates: NodeCertificate[] | null
}

export interface ReadOptions { readonly timeoutMs: number }

/** The status of the agent at `endpoint`, known as `node`. */
export async function readNodeStatus (node: string, endpoint: AgentEndpoint, o: ReadOptions): Promise<NodeStatus> {
  try {
    const [ready, pods, certs] = await Promise.all([
      getAgentJson(endpoint, '/healthz/ready', { timeoutMs: o.timeoutMs, port: PORTS.ready }),
      getAgentJson(endpoint, '/debug/pods', { timeoutMs: o.timeoutMs }),
      getAgentJson(endpoint, '/debug/certificates', { timeoutMs: o.timeoutMs })
    ])
    const r = ready.body ?? {}
    return {
      node,
      endpoint: endpoint.description,
      reachable: true,
      ready: ready.status === 200 && r.ready === true,
      notReady: notReadyReasons(r),
      pods: pods.status === 200 ? (pods.body.pods ?? []).map((p: any) => ({ namespace: String(p.namespace), name: String(p.name) })) : [],
      pendingPods: Array.isArray(r.pending) ? r.pending.length : 0,
      configGeneration: typeof r.config?.generation === 'number' ? r.config.generation : null,
      clusterGeneration: typeof r.generation === 'number' ? r.generation : null,
      certificates: certs.status === 200 && certs.body.enabled === true ? certs.body.certificates : null
    }
  } catch (err) {
    if (!isFerryError(err)) throw err
    return { node, endpoint: endpoint.description, reachable: false, error: err.message, ready: false, notReady: [], pods: [], pendingPods: 0, configGeneration: null, clusterGeneration: null, certificates: null }
  } finally {
    endpoint.close()
  }
}

function notReadyReasons (r: any): string[] {
  const out: string[] = []
  if (typeof r.reason === 'string') out.push(r.reason)
  if (r.config !== undefined && r.config.ready === false) out.push(`configuration: ${String(r.config.reason ?? 'none in force')}`)
  for (const p of r.certificates?.pending ?? []) out.push(`certificate ${String(p.spiffeId)} ${String(p.state)}${p.code === undefined ? '' : ` (${String(p.code)})`}`)
  return out
}
