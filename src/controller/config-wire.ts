import { createHash } from 'node:crypto'
import { type ConfigIssue, formatPath } from '../resources/issues'
import type { InForce, ObjectReport } from '../resources/reports'
import type { SourceDocument } from '../resources/snapshot'
import type { DocumentMessage, IssueMessage, ObjectReportMessage } from './config-protos'

// The configuration stream's documents and refused-object reports, between their
// in-process shapes (src/resources) and the wire's (config-protos.ts). Reports coming
// off the wire are informational (shown in the agent's /debug/config, never enforced);
// they are still bounded and typed here, as anything read from a peer.

const MAX_REPORTS = 1000
const MAX_ISSUES = 50
const MAX_TEXT = 2000
const IN_FORCE: readonly InForce[] = ['earlier-version', 'other-definition', 'none']

/** Digest of a set of documents (names, lines, texts) and reports: what both ends compare to skip a set already in force. */
export function documentsDigest (documents: readonly SourceDocument[], reports: readonly ObjectReport[] = []): string {
  const hash = createHash('sha256')
  for (const d of documents) hash.update(`${d.path}\0${d.line ?? 1}\0${d.text}\0`)
  for (const r of reports) hash.update(`${JSON.stringify(r)}\0`)
  return hash.digest('hex')
}

export function toDocumentMessage (d: SourceDocument): DocumentMessage {
  return { name: d.path, text: d.text, line: d.line ?? 1 }
}

export function toReportMessage (r: ObjectReport): ObjectReportMessage {
  return {
    object: r.object,
    key: r.key ?? '',
    api_version: r.apiVersion ?? '',
    file: r.file,
    line: r.line,
    in_force: r.inForce,
    note: r.note ?? '',
    refusal: r.refusal ?? '',
    issues: r.issues.map((i) => ({ file: i.file, line: i.line ?? 0, object: i.object ?? '', field: i.path === undefined ? '' : formatPath(i.path), message: i.message }))
  }
}

/** The controller's refused objects as reports of this process's shape, marked as the controller's. */
export function fromReportMessages (list: readonly ObjectReportMessage[] | null | undefined): ObjectReport[] {
  return (Array.isArray(list) ? list : []).slice(0, MAX_REPORTS).map((m) => {
    const inForce = IN_FORCE.find((s) => s === m?.in_force) ?? 'none'
    const issues: ConfigIssue[] = (Array.isArray(m?.issues) ? m.issues : []).slice(0, MAX_ISSUES).map((i: IssueMessage) => ({
      file: text(i?.file),
      ...(positive(i?.line) ? { line: Number(i.line) } : {}),
      ...(text(i?.object) === '' ? {} : { object: text(i.object) }),
      ...(text(i?.field) === '' ? {} : { path: [text(i.field)] }),
      message: text(i?.message)
    }))
    const note = text(m?.note)
    return Object.freeze({
      state: 'refused' as const,
      object: text(m?.object),
      key: text(m?.key) === '' ? null : text(m.key),
      apiVersion: text(m?.api_version) === '' ? null : text(m.api_version),
      file: text(m?.file),
      line: positive(m?.line) ? Number(m.line) : 1,
      issues: Object.freeze(issues),
      inForce,
      ...(m?.refusal === 'invalid' || m?.refusal === 'conflict' ? { refusal: m.refusal } : {}),
      ...(note === '' ? {} : { note }),
      reportedBy: 'controller'
    })
  })
}

function text (v: unknown): string {
  return typeof v === 'string' ? v.slice(0, MAX_TEXT) : ''
}

function positive (v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1
}
