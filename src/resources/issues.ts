import { FerryError } from '../errors'

// A problem in a configuration document, located as precisely as we can: file, line,
// the object (`AuthorizationPolicy prod/deny-dev`) and the field path
// (`spec.rules[0].from[0].source.ipBlocks[1]`). Validation collects every issue of every
// file before failing, so one rejection shows them all.

export type FieldPath = ReadonlyArray<string | number>

export interface ConfigIssue {
  readonly file: string
  /** 1-based line of the field (or of its nearest parent that exists). */
  readonly line?: number
  /** `Kind namespace/name`, when the document got that far. */
  readonly object?: string
  readonly path?: FieldPath
  readonly message: string
}

/** At most this many issues are spelled out in one error message (all are in `issues`). */
const MAX_REPORTED = 20

/** `spec.rules[0].from[1].source` */
export function formatPath (path: FieldPath): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : (out === '' ? seg : `.${seg}`)
  return out
}

/** `file:line: Kind ns/name: field.path: message` */
export function formatIssue (issue: ConfigIssue): string {
  const parts = [issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`]
  if (issue.object !== undefined) parts.push(issue.object)
  if (issue.path !== undefined && issue.path.length > 0) parts.push(formatPath(issue.path))
  return `${parts.join(': ')}: ${issue.message}`
}

/** A rejected configuration: FERRY_ERR_CONFIG, with every issue kept for programs. */
export class ConfigError extends FerryError {
  readonly issues: readonly ConfigIssue[]
  constructor (issues: readonly ConfigIssue[], opts: { cause?: unknown, errno?: string } = {}) {
    const shown = issues.slice(0, MAX_REPORTED).map(formatIssue)
    if (issues.length > MAX_REPORTED) shown.push(`… and ${issues.length - MAX_REPORTED} more`)
    const head = issues.length === 1 ? '' : `${issues.length} problems in the configuration:\n  `
    super('FERRY_ERR_CONFIG', head + shown.join('\n  '), opts)
    this.issues = Object.freeze(issues.map((i) => Object.freeze({ ...i })))
  }
}
