import { ferryError, type FerryError } from '../../errors'

// A problem found in a manifest, located as precisely as we can: file, line, the
// object (`Pod shop/web`) and the field path (`spec.containers[0].ports[0].containerPort`).
// Validation collects every issue before failing, so one run shows them all.

export type FieldPath = ReadonlyArray<string | number>

export interface ManifestIssue {
  readonly file: string
  readonly line?: number
  /** `Kind namespace/name`, `Kind name` for cluster-scoped kinds; absent for YAML errors. */
  readonly object?: string
  readonly path?: FieldPath
  readonly message: string
}

/** At most this many issues are spelled out in one error. */
const MAX_REPORTED = 20

export function formatPath (path: FieldPath): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : (out === '' ? seg : `.${seg}`)
  return out
}

export function formatIssue (issue: ManifestIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`
  const parts = [where]
  if (issue.object !== undefined) parts.push(issue.object)
  if (issue.path !== undefined && issue.path.length > 0) parts.push(formatPath(issue.path))
  return `${parts.join(': ')}: ${issue.message}`
}

export function manifestError (issues: readonly ManifestIssue[]): FerryError {
  const shown = issues.slice(0, MAX_REPORTED).map(formatIssue)
  if (issues.length > MAX_REPORTED) shown.push(`… and ${issues.length - MAX_REPORTED} more`)
  const head = issues.length === 1 ? '' : `${issues.length} problems in the manifests:\n  `
  return ferryError('FERRY_ERR_MANIFEST', head + shown.join('\n  '))
}
