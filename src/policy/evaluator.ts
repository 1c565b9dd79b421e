import type { AuthorizationPolicy } from '../resources/documents'
import { selects } from '../resources/documents'
import { type CompiledPolicy, compilePolicy, hasL7RuleOn, matchPolicy } from './compile'
import { Attributes, NO_ATTRIBUTES, SourceView } from './match'
import type { AuthzRequest, AuthzSource, Decision, DryRunDecision, WorkloadRef } from './model'

// Authorization at the destination, in Istio's order:
//   1. any DENY policy that matches → deny;
//   2. no ALLOW policy applies to the workload → allow;
//   3. an ALLOW policy matches → allow, otherwise deny.
// (CUSTOM comes first in Istio; Ferry has no external authorizer: CUSTOM is enforced as
// DENY, src/resources/degrade.ts.) A request at L7 is evaluated with its Attributes
// (the HTTP request); a connection without one follows compile.ts's rule for L7 rules.
// Dry-run policies are evaluated too, after the decision, and reported beside it; they
// never change it.
//
// Policies are compiled once per snapshot and indexed by namespace; the policies of one
// workload (namespace + labels) are selected once and cached per labels object, so a
// connection costs a cache lookup plus its own rule checks.

export interface AuthorizationOptions {
  readonly rootNamespace: string
}

interface NamespacePolicies {
  /** No selector: every workload of the namespace (of the mesh, in the root namespace). */
  readonly all: CompiledPolicy[]
  /** With a selector: workloads whose labels match (anywhere in the mesh, in the root namespace). */
  readonly selected: CompiledPolicy[]
}

const NO_DRY_RUN: readonly DryRunDecision[] = Object.freeze([])

/** The Attributes of a request to the engine (a connection when it has no HTTP request). */
export function attributesOf (req: AuthzRequest): Attributes {
  const ip = req.destination.ip ?? null
  const request = req.request ?? null
  return ip === null && request === null ? NO_ATTRIBUTES : new Attributes(ip, request)
}
const NO_FIELDS: readonly string[] = Object.freeze([])
const EMPTY_NS: NamespacePolicies = Object.freeze({ all: [], selected: [] })

export class AuthorizationEngine {
  readonly rootNamespace: string
  /** Every compiled policy, sorted by namespace/name. */
  readonly policies: readonly CompiledPolicy[]
  private readonly byNamespace: ReadonlyMap<string, NamespacePolicies>
  private readonly cache = new Map<string, WeakMap<object, WorkloadAuthz>>()

  private constructor (policies: readonly CompiledPolicy[], opts: AuthorizationOptions) {
    this.rootNamespace = opts.rootNamespace
    this.policies = policies
    const byNamespace = new Map<string, NamespacePolicies>()
    for (const p of policies) {
      const ns = p.policy.metadata.namespace
      let entry = byNamespace.get(ns)
      if (entry === undefined) byNamespace.set(ns, entry = { all: [], selected: [] })
      ;(p.selector === null ? entry.all : entry.selected).push(p)
    }
    this.byNamespace = byNamespace
  }

  static compile (policies: readonly AuthorizationPolicy[], opts: AuthorizationOptions): AuthorizationEngine {
    return new AuthorizationEngine(Object.freeze(policies.map((p) => compilePolicy(p, opts.rootNamespace))), opts)
  }

  /** The policies of one workload, ready to evaluate connections to it. */
  forWorkload (w: WorkloadRef): WorkloadAuthz {
    let perNs = this.cache.get(w.namespace)
    if (perNs === undefined) this.cache.set(w.namespace, perNs = new WeakMap())
    let entry = perNs.get(w.labels)
    if (entry === undefined) perNs.set(w.labels, entry = new WorkloadAuthz(w, this.applicable(w)))
    return entry
  }

  evaluate (req: AuthzRequest): Decision {
    return this.forWorkload(req.destination).evaluate(req.source, req.destination.port, attributesOf(req))
  }

  /** Mesh-wide (root namespace) policies first, then the workload's namespace; each group by name. */
  private applicable (w: WorkloadRef): CompiledPolicy[] {
    const root = this.byNamespace.get(this.rootNamespace) ?? EMPTY_NS
    const own = w.namespace === this.rootNamespace ? EMPTY_NS : (this.byNamespace.get(w.namespace) ?? EMPTY_NS)
    const out: CompiledPolicy[] = []
    for (const group of [root, own]) {
      for (const p of group.all) out.push(p)
      for (const p of group.selected) if (selects(p.selector as Record<string, string>, w.labels)) out.push(p)
    }
    return out
  }
}

/** The policies that apply to one workload, split for evaluation. */
export class WorkloadAuthz {
  readonly workload: WorkloadRef
  /** In evaluation order. */
  readonly policies: readonly CompiledPolicy[]
  private readonly deny: readonly CompiledPolicy[]
  private readonly allow: readonly CompiledPolicy[]
  private readonly dryRun: readonly CompiledPolicy[]
  private readonly dryRunHasAllow: boolean
  private readonly noAllowPolicy: Decision
  private readonly noAllowMatched: Decision
  /** no-allow-matched for a connection without a request, when ALLOW rules with L7 conditions could not match it. */
  private readonly noAllowMatchedConnection: Decision
  private readonly l7Ports = new Map<number, string | null>()
  /** The DENY policies with only their rules without L7 conditions (deniedWhateverTheRequest). */
  private readonly denyL4: readonly CompiledPolicy[]
  /** Some enforced ALLOW rule has L7 conditions: a request may match it where a connection cannot. */
  private readonly allowsByRequest: boolean

  constructor (workload: WorkloadRef, policies: readonly CompiledPolicy[]) {
    this.workload = workload
    this.policies = Object.freeze([...policies])
    const enforced = policies.filter((p) => !p.dryRun)
    this.deny = enforced.filter((p) => p.action === 'DENY')
    this.allow = enforced.filter((p) => p.action === 'ALLOW')
    this.dryRun = policies.filter((p) => p.dryRun)
    this.dryRunHasAllow = this.dryRun.some((p) => p.action === 'ALLOW')
    this.noAllowPolicy = Object.freeze({
      allowed: true, action: 'ALLOW', basis: 'no-allow-policy', fields: NO_FIELDS, dryRun: NO_DRY_RUN,
      reason: 'no DENY policy matched and no ALLOW policy applies to the workload'
    })
    const n = this.allow.length
    const degraded = this.allow.filter((p) => p.degraded)
    this.noAllowMatched = Object.freeze({
      allowed: false, action: 'DENY', basis: 'no-allow-matched', fields: NO_FIELDS, dryRun: NO_DRY_RUN,
      reason: `${n} ALLOW ${n === 1 ? 'policy applies' : 'policies apply'} to the workload (${this.allow.map((p) => p.ref).join(', ')}) and none matched` +
        (degraded.length === 0 ? '' : `; not enforced as written: ${degraded.map((p) => p.ref).join(', ')}`),
      ...(degraded.length === 0 ? {} : { degraded: true as const })
    })
    const l7Allow = this.allow.filter((p) => p.rules.some((r) => r.l7 && !r.never))
    this.allowsByRequest = l7Allow.length > 0
    this.denyL4 = this.deny.map((p) => ({ ...p, rules: p.rules.filter((r) => !r.l7) })).filter((p) => p.rules.length > 0)
    this.noAllowMatchedConnection = l7Allow.length === 0
      ? this.noAllowMatched
      : Object.freeze({
        ...this.noAllowMatched,
        reason: `${this.noAllowMatched.reason}; ALLOW rules with L7 conditions cannot match a connection that carries no HTTP request (${l7Allow.map((p) => p.ref).join(', ')})`
      })
  }

  /**
   * Decides a connection (no `at`, or `at` without a request) or one HTTP request (`at`
   * with its RequestView) from `source` on `port`.
   */
  evaluate (source: AuthzSource, port: number, at: Attributes = NO_ATTRIBUTES): Decision {
    const src = source instanceof SourceView ? source : new SourceView(source)
    const decision = this.enforce(src, port, at)
    return this.dryRun.length === 0 ? decision : this.withDryRun(decision, src, port, at)
  }

  /**
   * Before any request of a connection (`at` without one): the denial every request from
   * `source` on `port` would get, whatever it carries — a DENY rule without L7 conditions
   * matches, or ALLOW policies apply and none can match (no rule matches the connection
   * and none has L7 conditions a request could meet) — or null when some request may be
   * allowed. Dry-run policies are not consulted (they never change a decision).
   */
  deniedWhateverTheRequest (source: AuthzSource, port: number, at: Attributes = NO_ATTRIBUTES): Decision | null {
    const src = source instanceof SourceView ? source : new SourceView(source)
    for (const p of this.denyL4) {
      const m = matchPolicy(p, src, port, at)
      if (m !== null) {
        const d: Decision = { allowed: false, action: 'DENY', basis: 'deny-matched', policy: p.ref, rule: m.rule.index, fields: m.fields, reason: m.rule.reason, dryRun: NO_DRY_RUN }
        return p.widened || m.rule.degraded ? { ...d, degraded: true } : d
      }
    }
    if (this.allow.length === 0 || this.allowsByRequest) return null
    for (const p of this.allow) if (matchPolicy(p, src, port, at) !== null) return null
    return this.noAllowMatched
  }

  /**
   * The ref of a policy with L7 conditions that applies on `port` (in Istio's order:
   * DENY, then ALLOW, then dry-run ones), or null. Cached per port.
   */
  l7PolicyFor (port: number): string | null {
    let ref = this.l7Ports.get(port)
    if (ref === undefined) {
      const p = [...this.deny, ...this.allow, ...this.dryRun].find((x) => hasL7RuleOn(x, port))
      ref = p?.ref ?? null
      this.l7Ports.set(port, ref)
    }
    return ref
  }

  private enforce (src: SourceView, port: number, at: Attributes): Decision {
    for (const p of this.deny) {
      const m = matchPolicy(p, src, port, at)
      if (m !== null) {
        const d: Decision = m.notEvaluated.length === 0
          ? { allowed: false, action: 'DENY', basis: 'deny-matched', policy: p.ref, rule: m.rule.index, fields: m.fields, reason: m.rule.reason, dryRun: NO_DRY_RUN }
          : { allowed: false, action: 'DENY', basis: 'deny-matched', policy: p.ref, rule: m.rule.index, fields: m.fields, reason: m.rule.connectionReason, notEvaluated: m.notEvaluated, dryRun: NO_DRY_RUN }
        return p.widened || m.rule.degraded ? { ...d, degraded: true } : d
      }
    }
    if (this.allow.length === 0) return this.noAllowPolicy
    for (const p of this.allow) {
      const m = matchPolicy(p, src, port, at)
      if (m !== null) return { allowed: true, action: 'ALLOW', basis: 'allow-matched', policy: p.ref, rule: m.rule.index, fields: m.fields, reason: m.rule.reason, dryRun: NO_DRY_RUN }
    }
    return at.request === null ? this.noAllowMatchedConnection : this.noAllowMatched
  }

  /** Evaluates every dry-run policy and what the decision would be if they were enforced too. */
  private withDryRun (decision: Decision, src: SourceView, port: number, at: Attributes): Decision {
    const results: DryRunDecision[] = []
    let denyMatched = false
    let allowMatched = false
    for (const p of this.dryRun) {
      const m = matchPolicy(p, src, port, at)
      if (m === null) {
        results.push({ policy: p.ref, action: p.action, matched: false })
        continue
      }
      results.push({ policy: p.ref, action: p.action, matched: true, rule: m.rule.index, fields: m.fields })
      if (p.action === 'DENY') denyMatched = true
      else allowMatched = true
    }
    const allowApplies = this.allow.length > 0 || this.dryRunHasAllow
    const dryRunAllowed = decision.basis !== 'deny-matched' && !denyMatched &&
      (!allowApplies || decision.basis === 'allow-matched' || allowMatched)
    return { ...decision, dryRun: results, dryRunAllowed }
  }
}
