import { relative } from 'node:path'
import type { SourceLocation } from '../resources/documents'
import type { ClauseTrace, Explanation, PolicyTrace } from './explain'

// An Explanation for a terminal: the verdict first, then what decided it and where it is
// written, then every policy that applies with each rule's conditions.

export interface TextOptions {
  /** Paths are printed relative to this directory (the current one). */
  readonly cwd: string
  readonly source: string
  readonly destination: string
}

export function explanationText (e: Explanation, opts: TextOptions): string {
  const at = (l: SourceLocation): string => `${rel(l.file, opts.cwd)}:${l.line}`
  const d = e.decision
  const out: string[] = []
  out.push(`${d.allowed ? 'ALLOWED' : 'DENIED'}  ${opts.source}`)
  out.push(`     →   ${opts.destination}`)
  const http = e.request.http
  if (http !== undefined) out.push(`  request     ${http.method} ${http.path}${http.host === '' ? '' : ` (host ${http.host})`}`)
  else if (hasL7Conditions(e)) out.push('  request     a connection (no HTTP request: L7 conditions are not evaluated)')
  const by = d.policy === undefined
    ? `default: ${d.reason}`
    : `${d.action} policy ${d.policy}, rule ${String(d.rule)}${e.decidedAt === undefined ? '' : `  (${at(e.decidedAt)})`}`
  out.push(`  decided by  ${by}`)
  for (const c of e.decidedBy) out.push(`  because     ${c.field}: ${c.detail}  (${at(c.location)})`)
  if (d.policy !== undefined && e.decidedBy.length === 0) {
    out.push(d.notEvaluated === undefined
      ? '  because     the rule is empty ({}): it matches every connection'
      : '  because     without its L7 conditions the rule has none left: it matches every connection')
  }
  for (const f of d.notEvaluated ?? []) out.push(`  not checked ${f}: an L7 condition, counted as matching (no HTTP request)`)
  for (const n of e.degraded ?? []) out.push(`  degraded    ${n}`)
  out.push(`  mtls        ${e.mtls.mode} (${e.mtls.scope}${e.mtls.policy === undefined ? '' : ` ${e.mtls.policy}`})`)
  if (d.dryRun.length > 0) {
    for (const r of d.dryRun) {
      out.push(`  dry-run     ${r.action} ${r.policy}: ${r.matched ? `rule ${String(r.rule)} matches` : 'no rule matches'}`)
    }
    out.push(`              with the dry-run policies enforced: ${d.dryRunAllowed === true ? 'ALLOWED' : 'DENIED'}`)
  }
  const dest = e.request.destination
  const labels = Object.entries(dest.labels).map(([k, v]) => `${k}=${v}`).join(',')
  out.push('')
  out.push(`policies that apply to ${dest.namespace}/{${labels}} port ${dest.port} (${e.policies.length}; root namespace ${e.config.rootNamespace}):`)
  if (e.policies.length === 0) out.push('  none')
  for (const p of e.policies) out.push(...policyLines(p, at))
  out.push('')
  out.push(`configuration: ${rel(e.config.origin, opts.cwd)} (generation ${e.config.generation})`)
  return out.join('\n') + '\n'
}

function policyLines (p: PolicyTrace, at: (l: SourceLocation) => string): string[] {
  const scope = p.scope === 'workload' ? `workload {${Object.entries(p.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',')}}` : `${p.scope}-wide`
  const outcome = p.matchedRule === null ? 'no rule matches' : `rule ${p.matchedRule} matches`
  const lines = [`  ${p.action.padEnd(5)} ${p.policy}${p.dryRun ? ' [dry-run]' : ''}  ${scope}  ${outcome}  (${at(p.location)})`]
  if (p.note !== undefined) lines.push(`        ${p.note}`)
  for (const d of p.degraded ?? []) lines.push(`        not as written: ${d}`)
  for (const r of p.rules) {
    lines.push(`        rule ${r.index}: ${r.matched ? 'matches' : 'does not match'}${r.note === undefined ? '' : ` — ${r.note}`}`)
    for (const [name, clauses] of [['from', r.from], ['to', r.to]] as Array<[string, readonly ClauseTrace[] | null]>) {
      if (clauses === null) continue
      for (const c of clauses) {
        for (const cond of c.conditions) {
          lines.push(`          ${mark(cond)} ${name}[${c.index}].${lastPart(cond.field)}: ${cond.detail}`)
        }
      }
    }
    for (const cond of r.when?.conditions ?? []) lines.push(`          ${mark(cond)} ${lastPart(cond.field)}: ${cond.detail}`)
  }
  return lines
}

/** Some policy that applies has an L7 condition (one a connection leaves unevaluated). */
function hasL7Conditions (e: Explanation): boolean {
  return e.policies.some((p) => p.rules.some((r) => [...(r.from ?? []), ...(r.to ?? []), ...(r.when === null ? [] : [r.when])].some((c) => c.conditions.some((x) => x.notEvaluated === true))))
}

function mark (c: { matched: boolean, notEvaluated?: true }): string {
  return c.notEvaluated === true ? '?' : c.matched ? '✓' : '✗'
}

function lastPart (field: string): string {
  const dot = field.lastIndexOf('.')
  const parent = field.slice(0, dot)
  return `${parent.slice(parent.lastIndexOf('.') + 1)}.${field.slice(dot + 1)}`
}

function rel (file: string, cwd: string): string {
  const r = relative(cwd, file)
  return r === '' ? '.' : r.startsWith('..') ? file : r
}
