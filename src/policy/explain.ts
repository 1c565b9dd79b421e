import type { AuthorizationAction, SourceLocation } from '../resources/documents'
import type { CompiledClause, CompiledPolicy, CompiledRule, PolicyScope } from './compile'
import { attributesOf } from './evaluator'
import { type Attributes, SourceView } from './match'
import type { AuthzRequest, Decision, MtlsDecision } from './model'
import type { PolicySet } from './policy-set'

// Why a connection is allowed or denied: the decision of the evaluator (the same code
// the data path runs) plus a trace of every policy that applies to the destination,
// rule by rule and condition by condition, each located in its file. Plain JSON-able
// data, so the agent can serve it as it is; explain-text.ts renders it for people.

export interface Explanation {
  readonly allowed: boolean
  readonly decision: Decision
  readonly request: {
    readonly source: { readonly principal: string | null, readonly namespace: string | null, readonly ip: string | null }
    readonly destination: { readonly namespace: string, readonly labels: Readonly<Record<string, string>>, readonly port: number }
    /** The HTTP request decided (absent: a connection, where L7 conditions are not evaluated). */
    readonly http?: { readonly method: string, readonly path: string, readonly host: string }
  }
  /** The destination's mTLS mode on that port. */
  readonly mtls: MtlsDecision
  /** The conditions that made the decision, located (empty for the defaults and for rules `{}`). */
  readonly decidedBy: readonly ConditionTrace[]
  /** Where the deciding rule is written. */
  readonly decidedAt?: SourceLocation
  /** Every policy that applies to the destination, in evaluation order. */
  readonly policies: readonly PolicyTrace[]
  /**
   * Why the decision (or the mTLS mode) is not what the documents say as written: one
   * line per thing Ferry could not enforce that played a part, e.g. "DENY prod/x rule 0:
   * applied without spec.rules[0].to[0].operation.methods (…)". Empty when none did.
   */
  readonly degraded: readonly string[]
  readonly config: { readonly origin: string, readonly generation: number, readonly rootNamespace: string }
}

export interface PolicyTrace {
  readonly policy: string
  readonly action: AuthorizationAction
  readonly dryRun: boolean
  readonly scope: PolicyScope
  readonly selector: Readonly<Record<string, string>> | null
  readonly location: SourceLocation
  /** Index of the first matching rule, if any. */
  readonly matchedRule: number | null
  readonly rules: readonly RuleTrace[]
  readonly note?: string
  /** What of this policy Ferry does not enforce as written: `field: what it does instead`. */
  readonly degraded?: readonly string[]
}

export interface RuleTrace {
  readonly index: number
  readonly matched: boolean
  readonly location: SourceLocation
  readonly from: readonly ClauseTrace[] | null
  readonly to: readonly ClauseTrace[] | null
  /** The `when` entries' conditions (all must hold); null: none. */
  readonly when: ClauseTrace | null
  readonly note?: string
}

export interface ClauseTrace {
  readonly index: number
  readonly matched: boolean
  readonly conditions: readonly ConditionTrace[]
}

export interface ConditionTrace {
  readonly field: string
  readonly matched: boolean
  readonly detail: string
  readonly location: SourceLocation
  /** An L7 condition on a connection without an HTTP request: not evaluated. */
  readonly notEvaluated?: true
}

export function explain (set: PolicySet, request: AuthzRequest): Explanation {
  const src = new SourceView(request.source)
  const port = request.destination.port
  const at = attributesOf(request)
  const workload = set.authz.forWorkload(request.destination)
  const decision = workload.evaluate(src, port, at)
  const locate = set.snapshot.locate
  const policies = workload.policies.map((p) => tracePolicy(p, src, port, at, locate))
  let decidedBy: ConditionTrace[] = []
  let decidedAt: SourceLocation | undefined
  if (decision.policy !== undefined && decision.rule !== undefined) {
    const trace = policies.find((p) => p.policy === decision.policy && !p.dryRun)
    const rule = trace?.rules[decision.rule]
    if (rule !== undefined) {
      decidedAt = rule.location
      const used = new Set(decision.fields)
      decidedBy = [...(rule.from ?? []), ...(rule.to ?? []), ...(rule.when === null ? [] : [rule.when])].flatMap((c) => c.conditions).filter((c) => c.matched && used.has(c.field))
    }
  }
  return {
    allowed: decision.allowed,
    decision,
    degraded: [...decisionNotes(decision, workload.policies), ...mtlsNotes(set, request)],
    request: {
      source: { principal: src.principal, namespace: src.namespace, ip: src.ip },
      destination: { namespace: request.destination.namespace, labels: { ...request.destination.labels }, port },
      ...(at.request === null ? {} : { http: { method: at.request.method, path: at.request.path, host: at.request.host } })
    },
    mtls: set.mtls.modeFor(request.destination, port),
    decidedBy,
    ...(decidedAt === undefined ? {} : { decidedAt }),
    policies,
    config: { origin: set.snapshot.origin, generation: set.snapshot.generation, rootNamespace: set.snapshot.rootNamespace }
  }
}

type Locate = PolicySet['snapshot']['locate']

/** What Ferry could not enforce in the policies that made the decision. */
function decisionNotes (decision: Decision, policies: readonly CompiledPolicy[]): string[] {
  if (decision.degraded !== true) return []
  const enforced = policies.filter((p) => !p.dryRun)
  if (decision.basis === 'deny-matched') {
    const p = enforced.find((x) => x.ref === decision.policy && x.action === 'DENY')
    return p === undefined ? [] : policyNotes(p, decision.rule)
  }
  return enforced.filter((p) => p.action === 'ALLOW' && p.degraded).flatMap((p) => policyNotes(p))
}

/** The policy-wide changes, and those of one rule (or of every rule). */
function policyNotes (p: CompiledPolicy, rule?: number): string[] {
  const out = p.policy.degraded.filter((d) => d.kind === 'action' || d.kind === 'scope').map((d) => `${p.action} ${p.ref}: ${d.field}: ${d.effect}`)
  for (const r of p.rules) {
    if (rule !== undefined && r.index !== rule) continue
    if (r.never) out.push(`${p.action} ${p.ref} rule ${r.index}: ${neverNote(r)}`)
    else if (r.dropped.length > 0) out.push(`${p.action} ${p.ref} rule ${r.index}: ${droppedNote(r)}`)
  }
  return out
}

function neverNote (r: CompiledRule): string {
  return `matches nothing: Ferry cannot check ${r.unenforceable.join(', ')}, and an ALLOW rule it cannot fully check never matches`
}

function droppedNote (r: CompiledRule): string {
  return `applied without ${r.dropped.join(', ')} (Ferry cannot check them): it matches more connections, so it denies more`
}

/** PeerAuthentications of the destination whose mode Ferry reads differently from the document (DISABLE as UNSET). */
function mtlsNotes (set: PolicySet, request: AuthzRequest): string[] {
  return set.mtls.degradedFor(request.destination).map((p) => `PeerAuthentication ${p.ref}: ${p.degraded.filter((d) => d.kind === 'mode').map((d) => `${d.field}: ${d.effect}`).join('; ')}`)
}

function tracePolicy (p: CompiledPolicy, src: SourceView, port: number, at: Attributes, locate: Locate): PolicyTrace {
  const rules = p.rules.map((r) => traceRule(p, r, src, port, at, locate))
  const first = rules.find((r) => r.matched)
  const note = p.rules.length === 0
    ? `no rules: matches nothing${p.action === 'ALLOW' ? ' (this ALLOW policy allows nothing)' : ''}`
    : undefined
  const degraded = p.policy.degraded.filter((d) => d.kind !== 'condition-dropped' && d.kind !== 'rule-matches-nothing').map((d) => `${d.field}: ${d.effect}`)
  return {
    policy: p.ref,
    action: p.action,
    dryRun: p.dryRun,
    scope: p.scope,
    selector: p.selector,
    location: p.policy.origin,
    matchedRule: first === undefined ? null : first.index,
    rules,
    ...(note === undefined ? {} : { note }),
    ...(degraded.length === 0 ? {} : { degraded })
  }
}

function traceRule (p: CompiledPolicy, r: CompiledRule, src: SourceView, port: number, at: Attributes, locate: Locate): RuleTrace {
  const path = ['spec', 'rules', r.index]
  // As matchPolicy: without a request, a DENY rule's L7 conditions count as matching and an ALLOW rule with one cannot match.
  const skipL7 = at.request === null && r.l7
  const from = r.from === null ? null : r.from.map((c) => traceClause(p, c, src, port, at, skipL7, locate))
  const to = r.to === null ? null : r.to.map((c) => traceClause(p, c, src, port, at, skipL7, locate))
  const when = r.when === null ? null : traceClause(p, r.when, src, port, at, skipL7, locate)
  const cannot = skipL7 && p.action !== 'DENY'
  const matched = !r.never && !cannot && (from === null || from.some((c) => c.matched)) && (to === null || to.some((c) => c.matched)) && (when === null || when.matched)
  const note = r.never
    ? neverNote(r)
    : cannot
      ? 'has L7 conditions: an ALLOW rule with them cannot match a connection that carries no HTTP request'
      : r.dropped.length > 0
        ? droppedNote(r) + (from === null && to === null && when === null ? '; left empty, it matches every connection' : '')
        : skipL7
          ? 'applies without its L7 conditions: the connection carries no HTTP request (Istio\'s rule for a DENY)'
          : from === null && to === null && when === null ? 'an empty rule: matches every connection' : undefined
  return { index: r.index, matched, location: locate(p.policy, path), from, to, when, ...(note === undefined ? {} : { note }) }
}

function traceClause (p: CompiledPolicy, c: CompiledClause, src: SourceView, port: number, at: Attributes, skipL7: boolean, locate: Locate): ClauseTrace {
  const conditions = c.conditions.map((cond): ConditionTrace => {
    const r = cond.explain(src, port, at)
    const path = r.index === undefined ? cond.path : [...cond.path, r.index]
    return { field: cond.field, matched: r.matched, detail: r.detail, location: locate(p.policy, path), ...(r.notEvaluated === true ? { notEvaluated: true as const } : {}) }
  })
  return { index: c.index, matched: conditions.every((x) => x.matched || (skipL7 && x.notEvaluated === true)), conditions }
}
