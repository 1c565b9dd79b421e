import { type AuthorizationAction, type AuthorizationPolicy, hasSelector, type PolicyOperation, type PolicySource } from '../resources/documents'
import { formatPath } from '../resources/issues'
import { type Attributes, type Condition, NO_ATTRIBUTES, operationCondition, sourceCondition, SourceView } from './match'
import { type OperationL7Field, requestCondition } from './request-match'
import { whenConditions } from './when'

// An AuthorizationPolicy compiled for evaluation: its scope and its rules as lists of
// conditions. Istio's semantics:
//   - a rule matches when every part it has matches: any of its `from` entries (each:
//     all of its source fields) and any of its `to` entries (each: all of its operation
//     fields); a rule `{}` matches every connection;
//   - `when` entries must all hold too;
//   - a policy matches when any rule matches; no rules (absent or []) matches nothing.
// L7 conditions (methods, paths, hosts, request.headers) are evaluated against the HTTP
// request. A connection without one (L4: not HTTP, or a port where L7 is not engaged)
// follows Istio's rule for L7 policies applied to TCP traffic: an ALLOW rule with an L7
// condition cannot match it; a DENY rule applies without its L7 conditions (they count
// as matching, and the decision names them as not evaluated).
// A degraded policy (src/resources/degrade.ts) compiles as Ferry enforces it: an ALLOW
// rule with conditions Ferry cannot check never matches; a DENY rule comes without them.

export type PolicyScope = 'mesh' | 'namespace' | 'workload'

export interface CompiledClause {
  readonly index: number
  readonly conditions: readonly Condition[]
  /** The fields of its conditions, in order (what a decision reports as matched). */
  readonly fields: readonly string[]
}

export interface CompiledRule {
  readonly index: number
  /** "spec.rules[0]" */
  readonly field: string
  /** null: the rule has no `from` (any source). */
  readonly from: readonly CompiledClause[] | null
  /** null: the rule has no `to` (any operation). */
  readonly to: readonly CompiledClause[] | null
  /** The `when` entries' conditions, all of which must hold; null: none. */
  readonly when: CompiledClause | null
  /** Some condition reads the HTTP request. */
  readonly l7: boolean
  /** "DENY policy prod/deny-dev: rule 0 matched", built once. */
  readonly reason: string
  /** fields[from clause][to clause]: what a match reports, built once (index 0 when a side is absent); `when` fields last. */
  readonly fields: ReadonlyArray<ReadonlyArray<readonly string[]>>
  /** The same without L7 fields: what a DENY rule's match reports for a connection without a request. */
  readonly connectionFields: ReadonlyArray<ReadonlyArray<readonly string[]>>
  /** The L7 fields such a match counted as matching without evaluating them. */
  readonly notEvaluated: ReadonlyArray<ReadonlyArray<readonly string[]>>
  /** The reason of such a match. */
  readonly connectionReason: string
  /** An ALLOW rule with conditions Ferry cannot check (`unenforceable`): it never matches. */
  readonly never: boolean
  /** Not enforced as written: it never matches, or conditions were left out (`dropped`). */
  readonly degraded: boolean
  readonly unenforceable: readonly string[]
  readonly dropped: readonly string[]
}

export interface CompiledPolicy {
  readonly ref: string
  readonly policy: AuthorizationPolicy
  readonly action: AuthorizationAction
  readonly dryRun: boolean
  readonly scope: PolicyScope
  /** null: every workload in scope. */
  readonly selector: Readonly<Record<string, string>> | null
  readonly rules: readonly CompiledRule[]
  /** Applied in another action or scope than written (CUSTOM as DENY, targetRefs as the namespace). */
  readonly widened: boolean
  /** Some rule never matches or matches more than written, or the policy is widened. */
  readonly degraded: boolean
}

export interface RuleMatch {
  readonly rule: CompiledRule
  readonly fields: readonly string[]
  /** L7 fields of a DENY rule counted as matching a connection without a request (empty otherwise). */
  readonly notEvaluated: readonly string[]
}

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const
const OPERATION_FIELDS = ['ports', 'notPorts'] as const
const OPERATION_L7_FIELDS: readonly OperationL7Field[] = ['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts']
const NONE: readonly string[] = Object.freeze([])

export function compilePolicy (policy: AuthorizationPolicy, rootNamespace: string): CompiledPolicy {
  const selector = hasSelector(policy.spec.selector) ? policy.spec.selector.matchLabels : null
  const scope: PolicyScope = selector !== null ? 'workload' : policy.metadata.namespace === rootNamespace ? 'mesh' : 'namespace'
  const rules = (policy.spec.rules ?? []).map((rule, r): CompiledRule => {
    const base = ['spec', 'rules', r] as const
    const from = rule.from?.map((f, i) => clause(i, sourceConditions(f.source, [...base, 'from', i, 'source']))) ?? null
    const to = rule.to?.map((t, i) => clause(i, operationConditions(t.operation, [...base, 'to', i, 'operation']))) ?? null
    const when = rule.when === undefined ? null : clause(0, whenConditions(rule.when, base))
    const reason = `${policy.spec.action} policy ${policy.ref}: rule ${r} matched`
    const all = [...(from ?? []), ...(to ?? []), ...(when === null ? [] : [when])].flatMap((c) => c.conditions)
    const l7 = all.some((c) => c.l7)
    const table = (keep: (c: Condition) => boolean): ReadonlyArray<ReadonlyArray<readonly string[]>> => Object.freeze((from ?? [null]).map((f) => Object.freeze((to ?? [null]).map((t) =>
      Object.freeze([...(f?.conditions ?? []), ...(t?.conditions ?? []), ...(when?.conditions ?? [])].filter(keep).map((c) => c.field))))))
    const unenforceable = Object.freeze([...(rule.unenforceable ?? [])])
    const dropped = Object.freeze([...(rule.dropped ?? [])])
    return Object.freeze({
      index: r, field: formatPath(base), from: freezeOrNull(from), to: freezeOrNull(to), when, l7, reason,
      fields: table(() => true),
      connectionFields: table((c) => !c.l7),
      notEvaluated: table((c) => c.l7),
      connectionReason: `${reason} without its L7 conditions (the connection carries no HTTP request)`,
      never: unenforceable.length > 0, degraded: unenforceable.length + dropped.length > 0, unenforceable, dropped
    })
  })
  const widened = policy.degraded.some((d) => d.kind === 'action' || d.kind === 'scope')
  return Object.freeze({
    ref: policy.ref, policy, action: policy.spec.action, dryRun: policy.dryRun, scope, selector, rules: Object.freeze(rules),
    widened, degraded: widened || rules.some((r) => r.degraded)
  })
}

/**
 * The first rule of `p` that matches, with the fields that matched; null if none.
 * Without a request in `at`, L7 conditions are not evaluated (Istio's rule, above).
 */
export function matchPolicy (p: CompiledPolicy, src: SourceView, port: number, at: Attributes): RuleMatch | null {
  const rules = p.rules
  const connection = at.request === null
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]
    if (rule.never) continue
    const skipL7 = connection && rule.l7
    if (skipL7 && p.action !== 'DENY') continue
    const from = rule.from === null ? 0 : firstClause(rule.from, src, port, at, skipL7)
    if (from < 0) continue
    const to = rule.to === null ? 0 : firstClause(rule.to, src, port, at, skipL7)
    if (to < 0) continue
    if (rule.when !== null && !holds(rule.when.conditions, src, port, at, skipL7)) continue
    return skipL7
      ? { rule, fields: rule.connectionFields[from][to], notEvaluated: rule.notEvaluated[from][to] }
      : { rule, fields: rule.fields[from][to], notEvaluated: NONE }
  }
  return null
}

/**
 * Whether some L7 rule of `p` (one that reads the HTTP request) can apply on `port`:
 * its port conditions (ports, notPorts, destination.port) allow it. Such a policy
 * engages L7 for the workload on that port.
 */
export function hasL7RuleOn (p: CompiledPolicy, port: number): boolean {
  return p.rules.some((r) => r.l7 && !r.never &&
    (r.to === null || r.to.some((c) => c.conditions.every((k) => !k.portOnly || k.test(ANY_SOURCE, port, NO_ATTRIBUTES)))) &&
    (r.when === null || r.when.conditions.every((k) => !k.portOnly || k.test(ANY_SOURCE, port, NO_ATTRIBUTES))))
}

const ANY_SOURCE = new SourceView({})

/** Index of the first clause whose conditions all hold, or -1. */
function firstClause (clauses: readonly CompiledClause[], src: SourceView, port: number, at: Attributes, skipL7: boolean): number {
  for (let i = 0; i < clauses.length; i++) if (holds(clauses[i].conditions, src, port, at, skipL7)) return i
  return -1
}

function holds (conditions: readonly Condition[], src: SourceView, port: number, at: Attributes, skipL7: boolean): boolean {
  for (let k = 0; k < conditions.length; k++) {
    const c = conditions[k]
    if (skipL7 && c.l7) continue
    if (!c.test(src, port, at)) return false
  }
  return true
}

function clause (index: number, conditions: Condition[]): CompiledClause {
  return Object.freeze({ index, conditions: Object.freeze(conditions), fields: Object.freeze(conditions.map((c) => c.field)) })
}

function sourceConditions (source: PolicySource, path: ReadonlyArray<string | number>): Condition[] {
  const out: Condition[] = []
  for (const name of SOURCE_FIELDS) {
    const values = source[name]
    if (values !== undefined) out.push(sourceCondition(name, values, [...path, name]))
  }
  return out
}

function operationConditions (op: PolicyOperation, path: ReadonlyArray<string | number>): Condition[] {
  const out: Condition[] = []
  for (const name of OPERATION_FIELDS) {
    const ports = op[name]
    if (ports !== undefined) out.push(operationCondition(name, ports, [...path, name]))
  }
  for (const name of OPERATION_L7_FIELDS) {
    const values = op[name]
    if (values !== undefined) out.push(requestCondition(name, values, [...path, name]))
  }
  return out
}

function freezeOrNull<T> (list: T[] | null): readonly T[] | null {
  return list === null ? null : Object.freeze(list)
}
