import { type ConfigIssue, formatIssue } from './issues'

// What became of each configuration object, for people and programs: the log, metrics,
// /debug/config, `ferry policy validate`, the controller's status conditions.
//
//   accepted   enforced as written
//   degraded   enforced in a form that allows no more than written (src/resources/degrade.ts),
//              or not enforced at all when it cannot decide access (AUDIT, a root-namespace
//              PeerAuthentication with a selector)
//   refused    not enforced as written: malformed, a second definition of a name, a second
//              namespace-wide PeerAuthentication; `inForce` says what applies instead

export type ObjectState = 'accepted' | 'degraded' | 'refused'
export const OBJECT_STATES: readonly ObjectState[] = Object.freeze(['accepted', 'degraded', 'refused'])

/**
 * What of the object is in force:
 * - as-written / degraded: this document (accepted / degraded objects)
 * - earlier-version: the last valid version of the same object (kind + namespace + name)
 * - other-definition: another document of the same object, or the PeerAuthentication already in force
 * - none: nothing
 */
export type InForce = 'as-written' | 'degraded' | 'earlier-version' | 'other-definition' | 'none'

export interface ObjectReport {
  readonly state: ObjectState
  /** `AuthorizationPolicy prod/deny-dev`, or `document at FILE:LINE` when Ferry cannot tell which object it is. */
  readonly object: string
  /** kind/namespace/name (null: a document Ferry cannot identify). */
  readonly key: string | null
  readonly apiVersion: string | null
  readonly file: string
  readonly line: number
  /** Refused: what is wrong. Degraded: what is not enforced as written, why, and what Ferry does instead. */
  readonly issues: readonly ConfigIssue[]
  readonly inForce: InForce
  /** Refused: malformed (invalid) or in conflict with another object (conflict). */
  readonly refusal?: 'invalid' | 'conflict'
  /** One sentence: what applies instead (refused), e.g. "the earlier version (/c/a.yaml:3) keeps applying". */
  readonly note?: string
  /** Who judged it, when not this process ("controller"). */
  readonly reportedBy?: string
}

/** The report as log fields: one line per object, every issue formatted. */
export function reportLogFields (r: ObjectReport): Record<string, unknown> {
  return {
    object: r.object,
    state: r.state,
    inForce: r.inForce,
    ...(r.note === undefined ? {} : { note: r.note }),
    ...(r.reportedBy === undefined ? {} : { reportedBy: r.reportedBy }),
    issues: r.issues.map(formatIssue)
  }
}

/** One line per issue, `file:line: object: field: message`, then the note: what a NACK, an ACK or a status message carries. */
export function reportLines (r: ObjectReport): string[] {
  return [...r.issues.map(formatIssue), ...(r.note === undefined ? [] : [`${r.object}: ${r.note}`])]
}

export function countByState (reports: readonly ObjectReport[]): Record<ObjectState, number> {
  const out: Record<ObjectState, number> = { accepted: 0, degraded: 0, refused: 0 }
  for (const r of reports) out[r.state]++
  return out
}

/**
 * Which reports changed since the previous round, so that a refused or degraded object
 * is logged (and counted) once per change, not on every reload: `changed` are reports
 * new or different in state, issues or what is in force; `cleared` are objects that
 * were degraded or refused and are now accepted or gone.
 */
export class ReportChanges {
  private last = new Map<string, { fingerprint: string, report: ObjectReport }>()

  next (reports: readonly ObjectReport[]): { changed: ObjectReport[], cleared: ObjectReport[] } {
    const now = new Map<string, { fingerprint: string, report: ObjectReport }>()
    const changed: ObjectReport[] = []
    for (const r of reports) {
      const id = r.key ?? r.object
      const fingerprint = JSON.stringify([r.state, r.inForce, r.note ?? '', r.issues.map(formatIssue), r.reportedBy ?? ''])
      now.set(id, { fingerprint, report: r })
      const before = this.last.get(id)
      if (before?.fingerprint !== fingerprint && (r.state !== 'accepted' || (before !== undefined && before.report.state !== 'accepted'))) changed.push(r)
    }
    const cleared: ObjectReport[] = []
    for (const [id, before] of this.last) {
      if (before.report.state !== 'accepted' && !now.has(id)) cleared.push(before.report)
    }
    this.last = now
    return { changed, cleared }
  }
}

/** The log of a round's changes: one line per object that changed (warn while degraded or refused). */
export function logReportChanges (log: ReportLog, changes: { changed: readonly ObjectReport[], cleared: readonly ObjectReport[] }, context: Record<string, unknown>): void {
  for (const r of changes.changed) {
    const fields = { ...context, ...reportLogFields(r) }
    if (r.state === 'refused') log.warn({ ...fields, code: 'FERRY_ERR_CONFIG' }, 'configuration object refused')
    else if (r.state === 'degraded') log.warn(fields, 'configuration object degraded: enforced narrower than written')
    else log.info(fields, 'configuration object accepted as written')
  }
  for (const r of changes.cleared) log.info({ ...context, object: r.object, file: r.file }, 'configuration object no longer reported')
}

/** The two levels logReportChanges writes at (a pino Logger). */
export interface ReportLog {
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
}
