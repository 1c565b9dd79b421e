import type { Pod } from '../discovery/model'
import { Attributes } from '../policy/match'
import { type AuthzSource, type Decision, decisionLogFields } from '../policy/model'
import type { PolicySet } from '../policy/policy-set'
import type { RequestView } from '../policy/request-view'
import type { Logger } from '../telemetry/logger'
import type { Conn } from './conn'
import type { RelayEnd } from './relay'

// Authorize stage, at the destination, on every inbound path (plaintext listener, tunnel
// stream, the same-node fast path's inbound record): the current PolicySet decides, in
// Istio's order (src/policy/evaluator.ts), for
//   source       principal (verified by mTLS, or known: a pod of this node), its
//                namespace (from the principal; a pod of this node's own), peer IP
//   destination  the pod's namespace and labels, the port it was reached on
//              (and the address it was reached on, for `destination.ip`)
// Denied: the caller resets the connection (TCP) or refuses the stream (403); the
// decision's compact fields go on the access-log line (`authz`) and the policy on a
// counter.
//
// L7: where L7 is engaged the HTTP layer asks `authorizeRequest` for every request,
// with the request's method, normalized path, host and headers, and answers a denied
// one 403 / PERMISSION_DENIED on a connection that stays open. `authorize` decides a
// connection without a request: on a port where an L7 policy applies and the bytes are
// not HTTP, an L7 ALLOW rule cannot match and an L7 DENY rule applies without its L7
// conditions (Istio's rule; src/policy/compile.ts). An L7 connection is therefore not
// decided by `authorize` — its requests are; `admitsSomeRequest` refuses one at once
// when none of its requests could be allowed (an L4 DENY, say). `l7PolicyFor` names the policy that makes
// a pod port L7 (src/l7/policy-lookup.ts). Dry-run results are logged and never change the decision. This stage never
// throws: an evaluation failure (a bug) denies, logged.
//
// The PolicySet is one reference, swapped whole when the agent's config watcher
// publishes a new one: connections that start after `swap` follow it. `swap` also
// re-evaluates every live inbound connection (tracked from the start of its relay) with
// its recorded source and port and resets those now denied, as ztunnel does.
//
// Before the first PolicySet: with no configuration source at all (`requireConfig`
// false: the agent has no --config-dir or stream) no policy exists and everything is
// allowed; with one, the policies exist but are not known yet, so every inbound
// connection is denied (basis `no-config`) until a first snapshot arrives: fail closed,
// as a proxy that cannot read its authorization policy must. Sources admit object by
// object and the agent starts from its saved configuration (--config-cache), so this
// holds only for an agent that has never had a configuration.

export interface AuthzMetrics {
  /** One denied connection (or one closed by a policy change), by deciding policy. */
  authzDenied (policy: string, basis: string): void
}

interface LiveInbound {
  readonly conn: Conn
  readonly pod: Pod
  readonly ipNamespace: string | null
  readonly close: () => void
  /** Its requests are decided one by one (L7): a swap does not re-decide the connection. */
  readonly perRequest: boolean
}

export interface InboundAuthorizerDeps {
  readonly log: Logger
  readonly metrics?: AuthzMetrics
  /** A configuration source exists (--config-dir): deny everything until its first valid snapshot. */
  readonly requireConfig?: boolean
}

/** What /healthz/ready says about the configuration (admin-server.ts). */
export interface ConfigReadiness {
  /** False only while a configuration source exists and no valid snapshot of it has arrived. */
  readonly ready: boolean
  /** A configuration source exists (--config-dir). */
  readonly required: boolean
  /** Generation of the PolicySet in force (0: none). */
  readonly generation: number
  /** Why it is not ready (absent when ready). */
  readonly reason?: string
  /** Why the source could not be read (file: reason), while no snapshot is in force. */
  readonly issues?: readonly string[]
}

const NO_POLICY = '-'
const NO_CONFIG: Decision = Object.freeze({
  allowed: false,
  action: 'DENY',
  basis: 'no-config',
  fields: Object.freeze([]),
  dryRun: Object.freeze([]),
  reason: 'the agent has no valid configuration yet: inbound connections are denied until it has one'
})

export class InboundAuthorizer {
  private set: PolicySet | null = null
  private readonly live = new Set<LiveInbound>()
  private rejectedIssues: readonly string[] | null = null
  private readonly noConfigFields = Object.freeze(decisionLogFields(NO_CONFIG))

  constructor (private readonly deps: InboundAuthorizerDeps) {}

  /** The PolicySet in force; null: none yet (everything allowed, or denied with requireConfig). */
  current (): PolicySet | null { return this.set }

  /** Records that the configuration source's state was rejected (its issues, formatted). */
  rejected (issues: readonly string[]): void { this.rejectedIssues = Object.freeze([...issues]) }

  readiness (): ConfigReadiness {
    const required = this.deps.requireConfig === true
    if (this.set !== null || !required) return { ready: true, required, generation: this.set?.generation ?? 0 }
    return {
      ready: false,
      required,
      generation: 0,
      reason: this.rejectedIssues === null
        ? 'no configuration loaded yet: inbound connections are denied'
        : 'the configuration source cannot be read and no configuration was ever in force: inbound connections are denied',
      ...(this.rejectedIssues === null ? {} : { issues: this.rejectedIssues })
    }
  }

  /** Connections currently tracked for re-evaluation. */
  liveCount (): number { return this.live.size }

  /**
   * Decides `conn` (source fields, principal and originalDst set) to `pod`. Allowed: true;
   * denied: false with `conn.authz` set (the caller resets or refuses it).
   * `ipNamespace`: the source's namespace when the source is a pod of this node (known
   * without a certificate); plaintext peers from elsewhere have none.
   */
  authorize (conn: Conn, pod: Pod, ipNamespace: string | null = null): boolean {
    const set = this.set
    if (set === null) {
      if (this.deps.requireConfig !== true) return true
      conn.authz = this.noConfigFields
      this.deps.metrics?.authzDenied(NO_POLICY, NO_CONFIG.basis)
      return false
    }
    const decision = this.decide(set, conn, pod, ipNamespace)
    if (decision.allowed && decision.dryRun.length === 0 && decision.basis === 'no-allow-policy') return true
    conn.authz = decisionLogFields(decision)
    if (decision.dryRun.length > 0) {
      this.deps.log.info({ generation: set.generation, source: conn.source.ip, source_principal: conn.sourcePrincipal, destination: `${pod.namespace}/${pod.name}`, port: conn.originalDst?.port, ...conn.authz }, 'authorization dry-run')
    }
    if (!decision.allowed) this.deps.metrics?.authzDenied(decision.policy ?? NO_POLICY, decision.basis)
    return decision.allowed
  }

  /**
   * Decides one HTTP request of an L7 inbound connection (`conn` as `authorize` takes it)
   * to `pod`: the request's own decision, made for every request. Allowed: true; denied:
   * false with `conn.authz` set to this request's decision fields (the caller answers 403
   * or PERMISSION_DENIED and keeps the connection for the next request).
   */
  authorizeRequest (conn: Conn, pod: Pod, request: RequestView, ipNamespace: string | null = null): boolean {
    const set = this.set
    if (set === null) return this.authorize(conn, pod, ipNamespace)
    const decision = this.decide(set, conn, pod, ipNamespace, request)
    // Every request's own fields (null when no policy decided): an allowed request after
    // a denied one on the same connection must not carry the denial.
    conn.authz = decision.basis === 'no-allow-policy' && decision.dryRun.length === 0 ? null : decisionLogFields(decision)
    if (decision.dryRun.length > 0) {
      this.deps.log.info({ generation: set.generation, source: conn.source.ip, source_principal: conn.sourcePrincipal, destination: `${pod.namespace}/${pod.name}`, port: conn.originalDst?.port, method: request.method, path: request.path, ...conn.authz }, 'authorization dry-run')
    }
    if (!decision.allowed) this.deps.metrics?.authzDenied(decision.policy ?? NO_POLICY, decision.basis)
    return decision.allowed
  }

  /**
   * Decides, before any of its requests, a connection to a pod port where L7 is engaged:
   * false (with `conn.authz` set, counted) when every request it could carry would be
   * denied — no configuration yet, a DENY rule without L7 conditions matches it, or ALLOW
   * policies apply and none of them can match (none has an L7 rule a request could
   * match). The caller then refuses the connection at once, as L4 does, and never
   * connects to the pod. True: its requests are decided one by one (authorizeRequest).
   */
  admitsSomeRequest (conn: Conn, pod: Pod, ipNamespace: string | null = null): boolean {
    const set = this.set
    if (set === null) return this.authorize(conn, pod, ipNamespace)
    let decision: Decision | null
    try {
      const dst = conn.originalDst
      decision = set.authz.forWorkload(pod).deniedWhateverTheRequest(this.sourceOf(conn, ipNamespace), dst?.port ?? 0, new Attributes(dst?.address ?? null, null))
    } catch (err) {
      this.deps.log.error({ err, destination: `${pod.namespace}/${pod.name}` }, 'authorization failed; denying')
      decision = { allowed: false, action: 'DENY', basis: 'no-allow-matched', fields: [], dryRun: [], reason: `evaluation failed: ${(err as Error).message}` }
    }
    if (decision === null) return true
    conn.authz = decisionLogFields(decision)
    this.deps.metrics?.authzDenied(decision.policy ?? NO_POLICY, decision.basis)
    return false
  }

  /**
   * The ref ("namespace/name") of an AuthorizationPolicy with L7 fields that selects `pod`
   * on `port` (it engages L7 there: src/l7/policy-lookup.ts), or null. A Map lookup per
   * workload and port once computed (src/policy/evaluator.ts).
   */
  l7PolicyFor (pod: Pod, port: number): string | null {
    const set = this.set
    if (set === null) return null
    try {
      return set.authz.forWorkload(pod).l7PolicyFor(port)
    } catch (err) {
      this.deps.log.error({ err, destination: `${pod.namespace}/${pod.name}` }, 'finding the L7 policy failed')
      return null
    }
  }

  /**
   * Tracks a relayed inbound connection for re-evaluation; returns its untrack function.
   * `perRequest`: an L7 connection, whose requests are each decided by the PolicySet in
   * force when they arrive; a swap does not close it.
   */
  track (conn: Conn, pod: Pod, ipNamespace: string | null, close: () => void, perRequest = false): () => void {
    const entry: LiveInbound = { conn, pod, ipNamespace, close, perRequest }
    this.live.add(entry)
    return () => { this.live.delete(entry) }
  }

  /** Installs a new PolicySet; closes live connections it denies. Returns how many. */
  swap (set: PolicySet): number {
    this.set = set
    this.rejectedIssues = null
    let closed = 0
    for (const e of [...this.live]) {
      if (e.conn.result !== null) { this.live.delete(e); continue }
      if (e.perRequest) continue
      const decision = this.decide(set, e.conn, e.pod, e.ipNamespace)
      if (decision.allowed) continue
      e.conn.authz = decisionLogFields(decision)
      this.deps.metrics?.authzDenied(decision.policy ?? NO_POLICY, decision.basis)
      this.live.delete(e)
      closed++
      try { e.close() } catch (err) { this.deps.log.error({ err }, 'closing a denied connection failed') }
    }
    if (closed > 0) this.deps.log.info({ generation: set.generation, closed }, 'closed live connections the new policy denies')
    return closed
  }

  private sourceOf (conn: Conn, ipNamespace: string | null): AuthzSource {
    const principal = conn.sourcePrincipal
    return { principal, namespace: principal === null ? ipNamespace : null, ip: conn.source.ip === '' ? null : conn.source.ip }
  }

  private decide (set: PolicySet, conn: Conn, pod: Pod, ipNamespace: string | null, request: RequestView | null = null): Decision {
    try {
      const dst = conn.originalDst
      return set.authz.forWorkload(pod).evaluate(this.sourceOf(conn, ipNamespace), dst?.port ?? 0, new Attributes(dst?.address ?? null, request))
    } catch (err) {
      this.deps.log.error({ err, destination: `${pod.namespace}/${pod.name}` }, 'authorization failed; denying')
      return { allowed: false, action: 'DENY', basis: 'no-allow-matched', fields: [], dryRun: [], reason: `evaluation failed: ${(err as Error).message}` }
    }
  }
}

/** Closes a denied or newly denied connection: reset both ends; the relay then ends. */
export function resetEnds (...ends: Array<RelayEnd | null>): void {
  for (const e of ends) if (e !== null && !e.destroyed) e.resetAndDestroy()
}
