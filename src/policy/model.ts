import type { AuthorizationAction, MtlsMode } from '../resources/documents'
import type { RequestView } from './request-view'

// What the policy engine is asked and what it answers. Requests are plain data from the
// data path; decisions are plain, JSON-able data that the access log, metrics and
// `ferry policy check` (later the agent's admin endpoint) print as they are.

export const POLICY_DEFAULTS = Object.freeze({
  /** Ferry's default when no PeerAuthentication says otherwise (Istio's is PERMISSIVE). */
  mtlsMode: 'STRICT' as MtlsMode,
  /** Trust domain used to name a pod's identity in `ferry policy check --from ns/pod`. */
  trustDomain: 'cluster.local'
})

/** A workload, as policies select it: its namespace and its pod's labels. */
export interface WorkloadRef {
  readonly namespace: string
  /** Treated as immutable (the discovery snapshot's frozen pod.labels): indexes are cached per labels object. */
  readonly labels: Readonly<Record<string, string>>
}

export interface AuthzSource {
  /** SPIFFE ID of the peer, with or without `spiffe://`; absent for plaintext peers. */
  readonly principal?: string | null
  /** The peer's namespace; derived from the principal when absent. */
  readonly namespace?: string | null
  /** The peer's address as seen by the destination (any spelling; v4-mapped IPv6 is IPv4). */
  readonly ip?: string | null
}

export interface AuthzRequest {
  readonly source: AuthzSource
  /** `ip`: the address the destination was reached on (`destination.ip` conditions); absent: unknown. */
  readonly destination: WorkloadRef & { readonly port: number, readonly ip?: string | null }
  /**
   * The HTTP request, for L7 conditions; absent or null: a connection without one (L4),
   * where an L7 ALLOW rule cannot match and an L7 DENY rule applies without its L7 conditions.
   */
  readonly request?: RequestView | null
}

/**
 * Why a decision came out as it did:
 * - deny-matched: a DENY policy matched (denied)
 * - allow-matched: no DENY matched and an ALLOW policy matched (allowed)
 * - no-allow-policy: no DENY matched and no ALLOW policy applies to the workload (allowed)
 * - no-allow-matched: ALLOW policies apply and none matched (denied)
 * - no-config: the agent was given a configuration directory and has no valid
 *   snapshot of it yet, so it does not know the policies (denied: fail closed)
 */
export type DecisionBasis = 'deny-matched' | 'allow-matched' | 'no-allow-policy' | 'no-allow-matched' | 'no-config'

export interface Decision {
  readonly allowed: boolean
  /** The effect: the deciding policy's action, or the default's. */
  readonly action: AuthorizationAction
  readonly basis: DecisionBasis
  /** "namespace/name" of the deciding policy (absent for the two defaults). */
  readonly policy?: string
  /** Index of the deciding rule in spec.rules. */
  readonly rule?: number
  /** Paths of the conditions that matched, e.g. spec.rules[0].from[0].source.namespaces (empty for a rule `{}`). */
  readonly fields: readonly string[]
  /** One sentence for people. */
  readonly reason: string
  /**
   * L7 conditions (methods, paths, hosts, request headers) the deciding DENY rule counted
   * as matching without evaluating them: the connection carries no HTTP request. Absent
   * when none.
   */
  readonly notEvaluated?: readonly string[]
  /** What each dry-run policy that applies would have done. Empty when none applies. */
  readonly dryRun: readonly DryRunDecision[]
  /** The decision if the dry-run policies were enforced too (present when dryRun is not empty). */
  readonly dryRunAllowed?: boolean
  /**
   * A policy Ferry does not enforce as written made this decision: the deciding DENY rule
   * left conditions out (or the policy's action or scope was widened), or, for
   * no-allow-matched, an ALLOW policy that applies has rules that never match.
   */
  readonly degraded?: true
}

export interface DryRunDecision {
  readonly policy: string
  readonly action: AuthorizationAction
  readonly matched: boolean
  readonly rule?: number
  readonly fields?: readonly string[]
}

/** Where a workload's mTLS mode came from, most specific first. */
export type MtlsScope = 'port' | 'workload' | 'namespace' | 'mesh' | 'default'

export interface MtlsDecision {
  readonly mode: MtlsMode
  readonly scope: MtlsScope
  /** "namespace/name" of the PeerAuthentication that set it (absent for the default). */
  readonly policy?: string
}

/** The compact fields a log line or access record carries for a decision. */
export function decisionLogFields (d: Decision): Record<string, unknown> {
  const out: Record<string, unknown> = { allowed: d.allowed, basis: d.basis }
  if (d.policy !== undefined) { out.policy = d.policy; out.rule = d.rule }
  if (d.degraded === true) out.degraded = true
  if (d.notEvaluated !== undefined) out.notEvaluated = d.notEvaluated
  if (d.dryRun.length > 0) {
    out.dryRunAllowed = d.dryRunAllowed
    out.dryRun = d.dryRun.map((r) => r.matched ? `${r.action} ${r.policy} rule ${String(r.rule)} matched` : `${r.action} ${r.policy} no match`)
  }
  return out
}
