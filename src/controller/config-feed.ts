import type { Registry } from 'prom-client'
import { ConfigAdmission } from '../resources/admission'
import { ObjectMetrics } from '../resources/metrics'
import { logReportChanges, type ObjectReport, ReportChanges } from '../resources/reports'
import type { SavedConfig } from '../resources/saved-config'
import type { ConfigSnapshot, SourceDocument } from '../resources/snapshot'
import type { Logger } from '../telemetry/logger'
import { documentsDigest } from './config-wire'

// What the controller serves on the configuration stream: its configuration objects, in
// versions. A feed (a directory, or the API server's objects) offers every state it
// reads; the versioner admits it object by object with src/resources, exactly as an
// agent admits a directory, so one bad object affects only itself: it is refused (its
// last valid version keeps applying), logged once with its file or object, line and
// field, and everything else goes out. A new version is made whenever what is in force
// (or what is refused) differs from the version in force.
//
// A version carries one document per object in force (the last valid version of a
// refused one) and the reports of the refused objects. The controller saves each
// version in its data directory (config-state.ts); restore() serves the saved one at
// start, before the feed has read anything, and seeds the admission's memory with it,
// so an object that is broken when the controller restarts keeps its last valid version.

export interface ConfigVersion {
  /** 1 for the first version of a controller process, +1 for every changed one after. */
  readonly version: number
  /** A directory, or "kubernetes <server>". */
  readonly origin: string
  readonly rootNamespace: string
  /** One per object in force, by path and line. */
  readonly documents: readonly SourceDocument[]
  /** The objects refused, for the agents' reports. */
  readonly refused: readonly ObjectReport[]
  /** documentsDigest() of documents and refused. */
  readonly digest: string
  /** Served from the saved state at start (already on disk). */
  readonly restored?: true
}

export interface ConfigFeed {
  /** For logs: "directory", "kubernetes". */
  readonly kind: string
  /** Starts watching; resolves after the first state was read or after `waitMs`. */
  start (onVersion: (v: ConfigVersion) => void, waitMs: number): Promise<void>
  current (): ConfigVersion | null
  close (): void
}

export interface VersionerOptions {
  readonly log: Logger
  readonly rootNamespace: string
  /** Where the object metrics go (the controller's registry). */
  readonly registry?: Registry
  /** The last version saved by an earlier controller process. */
  readonly saved?: SavedConfig | null
}

/** The admit → compare → version step shared by every feed. */
export class ConfigVersioner {
  private currentVersion: ConfigVersion | null = null
  private readonly admission = new ConfigAdmission()
  private readonly changes = new ReportChanges()
  private readonly metrics: ObjectMetrics | null
  private onVersion: (v: ConfigVersion) => void = () => {}

  constructor (private readonly opts: VersionerOptions) {
    this.metrics = opts.registry === undefined ? null : new ObjectMetrics(opts.registry, 'ferry_controller_config')
  }

  current (): ConfigVersion | null { return this.currentVersion }

  /** Starts publishing; serves the saved version at once, when there is one for this root namespace. */
  start (onVersion: (v: ConfigVersion) => void): void {
    this.onVersion = onVersion
    const saved = this.opts.saved ?? null
    if (saved === null) return
    if (saved.rootNamespace !== this.opts.rootNamespace) {
      this.opts.log.warn({ saved: saved.savedAt, savedRootNamespace: saved.rootNamespace, rootNamespace: this.opts.rootNamespace }, 'saved configuration is for another root namespace; not served')
      return
    }
    this.admission.seed(saved.documents, saved.rootNamespace)
    this.publish(saved.origin, saved.documents, saved.upstreamReports, true)
    this.opts.log.info({ version: 1, saved: saved.savedAt, documents: saved.documents.length }, 'serving the saved configuration until the feed has read the current one')
  }

  /** Offers a state; returns how it was judged (every object's report) and whether it made a new version. */
  offer (documents: readonly SourceDocument[], origin: string): { snapshot: ConfigSnapshot, changed: boolean } {
    const snapshot = this.admission.admit(documents, { origin, generation: (this.currentVersion?.version ?? 0) + 1, rootNamespace: this.opts.rootNamespace })
    const changes = this.changes.next(snapshot.objects)
    logReportChanges(this.opts.log, changes, { origin })
    this.metrics?.observe(snapshot.objects, changes.changed)
    const refused = snapshot.objects.filter((o) => o.state === 'refused')
    const digest = documentsDigest(snapshot.documents, refused)
    if (digest === this.currentVersion?.digest) return { snapshot, changed: false }
    this.publish(origin, snapshot.documents, refused)
    return { snapshot, changed: true }
  }

  private publish (origin: string, documents: readonly SourceDocument[], refused: readonly ObjectReport[], restored = false): void {
    const version = (this.currentVersion?.version ?? 0) + 1
    this.currentVersion = Object.freeze({
      version,
      origin,
      rootNamespace: this.opts.rootNamespace,
      documents: Object.freeze([...documents]),
      refused: Object.freeze([...refused]),
      digest: documentsDigest(documents, refused),
      ...(restored ? { restored: true as const } : {})
    })
    this.opts.log.info({ origin, version, documents: documents.length, refused: refused.length }, 'configuration version made')
    this.onVersion(this.currentVersion)
  }
}
