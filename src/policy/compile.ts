import { type AuthorizationAction, type AuthorizationPolicy, hasSelector, type PolicyOperation, type PolicySource } from '../resources/documents'
import { formatPath } from '../resources/issues'
import { type Condition, operationCondition, sourceCondition, type SourceView } from './match'

// An AuthorizationPolicy compiled for evaluation: its scope and its rules as lists of
// conditions. Istio's semantics:
//   - a rule matches when every part it has matches: any of its `from` entries (each:
//     all of its source fields) and any of its `to` entries (each: all of its operation
//     fields); a rule `{}` matches every connection;
//   - a policy matches when any rule matches; no rules (absent or []) matches nothing.
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
  /** "DENY policy prod/deny-dev: rule 0 matched", built once. */
  readonly reason: string
  /** fields[from clause][to clause]: what a match reports, built once (index 0 when a side is absent). */
  readonly fields: ReadonlyArray<ReadonlyArray<readonly string[]>>
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
}

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const
const OPERATION_FIELDS = ['ports', 'notPorts'] as const

export function compilePolicy (policy: AuthorizationPolicy, rootNamespace: string): CompiledPolicy {
  const selector = hasSelector(policy.spec.selector) ? policy.spec.selector.matchLabels : null
  const scope: PolicyScope = selector !== null ? 'workload' : policy.metadata.namespace === rootNamespace ? 'mesh' : 'namespace'
  const rules = (policy.spec.rules ?? []).map((rule, r): CompiledRule => {
    const base = ['spec', 'rules', r] as const
    const from = rule.from?.map((f, i) => clause(i, sourceConditions(f.source, [...base, 'from', i, 'source']))) ?? null
    const to = rule.to?.map((t, i) => clause(i, operationConditions(t.operation, [...base, 'to', i, 'operation']))) ?? null
    const reason = `${policy.spec.action} policy ${policy.ref}: rule ${r} matched`
    const fields = (from ?? [null]).map((f) => Object.freeze((to ?? [null]).map((t) => Object.freeze([...(f?.fields ?? []), ...(t?.fields ?? [])]))))
    const unenforceable = Object.freeze([...(rule.unenforceable ?? [])])
    const dropped = Object.freeze([...(rule.dropped ?? [])])
    return Object.freeze({
      index: r, field: formatPath(base), from: freezeOrNull(from), to: freezeOrNull(to), reason, fields: Object.freeze(fields),
      never: unenforceable.length > 0, degraded: unenforceable.length + dropped.length > 0, unenforceable, dropped
    })
  })
  const widened = policy.degraded.some((d) => d.kind === 'action' || d.kind === 'scope')
  return Object.freeze({
    ref: policy.ref, policy, action: policy.spec.action, dryRun: policy.dryRun, scope, selector, rules: Object.freeze(rules),
    widened, degraded: widened || rules.some((r) => r.degraded)
  })
}

/** The first rule of `p` that matches, with the fields that matched; null if none. */
export function matchPolicy (p: CompiledPolicy, src: SourceView, port: number): RuleMatch | null {
  const rules = p.rules
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]
    if (rule.never) continue
    const from = rule.from === null ? 0 : firstClause(rule.from, src, port)
    if (from < 0) continue
    const to = rule.to === null ? 0 : firstClause(rule.to, src, port)
    if (to < 0) continue
    return { rule, fields: rule.fields[from][to] }
  }
  return null
}

/** Index of the first clause whose conditions all hold, or -1. */
function firstClause (clauses: readonly CompiledClause[], src: SourceView, port: number): number {
  for (let i = 0; i < clauses.length; i++) {
    const conditions = clauses[i].conditions
    let all = true
    for (let k = 0; k < conditions.length && all; k++) all = conditions[k].test(src, port)
    if (all) return i
  }
  return -1
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
  return out
}

function freezeOrNull<T> (list: T[] | null): readonly T[] | null {
  return list === null ? null : Object.freeze(list)
}
