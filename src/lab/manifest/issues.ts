import { ferryError, type FerryError } from '../../errors'
import { type ConfigIssue, formatIssue, formatPath } from '../../resources/issues'

// A problem found in a manifest, located as precisely as we can: file, line, the
// object (`Pod shop/web`) and the field path (`spec.containers[0].ports[0].containerPort`).
// Validation collects every issue before failing, so one run shows them all.

export type { FieldPath } from '../../resources/issues'

/** The same shape as a configuration issue, so one formatter serves both. */
export type ManifestIssue = ConfigIssue

/** At most this many issues are spelled out in one error. */
const MAX_REPORTED = 20

export { formatPath, formatIssue }

export function manifestError (issues: readonly ManifestIssue[]): FerryError {
  const shown = issues.slice(0, MAX_REPORTED).map(formatIssue)
  if (issues.length > MAX_REPORTED) shown.push(`… and ${issues.length - MAX_REPORTED} more`)
  const head = issues.length === 1 ? '' : `${issues.length} problems in the manifests:\n  `
  return ferryError('FERRY_ERR_MANIFEST', head + shown.join('\n  '))
}
