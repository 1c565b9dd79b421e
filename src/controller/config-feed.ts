import { createHash } from 'node:crypto'
import { ConfigError, formatIssue } from '../resources/issues'
import { buildSnapshot, type ConfigFile } from '../resources/loader'
import type { Logger } from '../telemetry/logger'

// What the controller serves on the configuration stream: its configuration resources,
// as the documents it read them from (files of a directory, or objects of the API
// server), in versions. A feed validates every state with src/resources, exactly as an
// agent validates a directory, and publishes a new version only when the whole set is
// valid and differs from the one in force. An invalid state is logged once with every
// issue (file or object, line, field) and the last good version keeps serving.

export interface ConfigVersion {
  /** 1 for the first good set, +1 for every changed one after (one controller process). */
  readonly version: number
  /** A directory, or "kubernetes <server>". */
  readonly origin: string
  readonly rootNamespace: string
  /** Sorted by name. */
  readonly documents: readonly ConfigFile[]
  /** SHA-256 of the documents (names and texts), hex. */
  readonly digest: string
}

export interface ConfigFeed {
  /** For logs: "directory", "kubernetes". */
  readonly kind: string
  /** Starts watching; resolves after the first state was read (valid or not) or after `waitMs`. */
  start (onVersion: (v: ConfigVersion) => void, waitMs: number): Promise<void>
  current (): ConfigVersion | null
  close (): void
}

/** Digest of a set of documents: what the agent computes too, to skip a set it already has. */
export function documentsDigest (documents: readonly ConfigFile[]): string {
  const hash = createHash('sha256')
  for (const d of documents) hash.update(`${d.path}\0${d.text}\0`)
  return hash.digest('hex')
}

/** The validate → compare → version step shared by every feed. */
export class ConfigVersioner {
  private currentVersion: ConfigVersion | null = null
  private lastRejected = ''

  constructor (private readonly opts: { readonly log: Logger, readonly rootNamespace: string, readonly onVersion: (v: ConfigVersion) => void }) {}

  current (): ConfigVersion | null { return this.currentVersion }

  /** Offers a state; returns whether it became the new version. */
  offer (documents: readonly ConfigFile[], origin: string): boolean {
    const sorted = [...documents].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
    const digest = documentsDigest(sorted)
    if (digest === this.currentVersion?.digest) {
      if (this.lastRejected !== '') this.opts.log.info({ origin, version: this.currentVersion.version }, 'configuration valid again, unchanged')
      this.lastRejected = ''
      return false
    }
    const version = (this.currentVersion?.version ?? 0) + 1
    try {
      buildSnapshot(sorted, { origin, generation: version, rootNamespace: this.opts.rootNamespace })
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      if (digest !== this.lastRejected) {
        this.lastRejected = digest
        this.opts.log.warn({ origin, code: err.code, version: this.currentVersion?.version ?? 0, issues: err.issues.map(formatIssue) },
          'configuration rejected; the last good configuration keeps serving')
      }
      return false
    }
    this.lastRejected = ''
    this.currentVersion = Object.freeze({ version, origin, rootNamespace: this.opts.rootNamespace, documents: Object.freeze(sorted.map((d) => Object.freeze({ ...d }))), digest })
    this.opts.log.info({ origin, version, documents: sorted.length }, 'configuration version made')
    this.opts.onVersion(this.currentVersion)
    return true
  }
}
