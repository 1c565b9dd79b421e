import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Registry } from 'prom-client'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { ChangeTrigger, WATCH_DEFAULTS } from '../util/change-trigger'
import { ConfigAdmission } from './admission'
import { ConfigError, formatIssue } from './issues'
import { type ConfigFile, listConfigFiles, readConfigFiles } from './loader'
import { ConfigMetrics } from './metrics'
import { logReportChanges, ReportChanges } from './reports'
import type { SavedConfig } from './saved-config'
import { CONFIG_DEFAULTS, type ConfigSnapshot, resourceCounts } from './snapshot'

// Watches a configuration directory and publishes a new ConfigSnapshot for every change,
// admitted object by object (src/resources/admission.ts): one bad object is refused (its
// last valid version keeps applying) and everything else applies. When to reload
// (directory watch, debounce, slow poll, one load at a time) is src/util/change-trigger.ts's
// job, shared with the file discovery source. Each object that becomes refused or
// degraded is logged and counted once per change; a directory that cannot be read at
// all is reported once while the last snapshot keeps serving.
//
// A saved configuration (the agent's --config-cache) seeds the admission's memory, so
// the objects of a file that is broken at start keep their last good version, and it
// serves when the directory cannot be read at all at start.

export const CONFIG_WATCH_DEFAULTS = WATCH_DEFAULTS

export interface ConfigListener {
  /** A new, frozen snapshot (generation strictly increasing). */
  onSnapshot (snapshot: ConfigSnapshot): void
  /** The source could not be read or used at all; the last snapshot (if any) stays current. */
  onRejected? (err: ConfigError): void
}

export interface ConfigWatcherOptions {
  readonly dir: string
  readonly log: Logger
  /** Where the metrics go (the agent's registry). */
  readonly registry?: Registry
  readonly rootNamespace?: string
  readonly pollMs?: number
  readonly debounceMs?: number
  /** The last good configuration saved before this process started (the agent's --config-cache). */
  readonly saved?: SavedConfig | null
}

export class ConfigDirectoryWatcher {
  readonly dir: string
  readonly metrics: ConfigMetrics
  private readonly log: Logger
  private readonly rootNamespace: string | undefined
  private readonly trigger: ChangeTrigger
  private readonly admission = new ConfigAdmission()
  private readonly changes = new ReportChanges()
  private listener: ConfigListener | null = null
  private snapshot: ConfigSnapshot | null = null
  /** Digest of the last directory state handled. */
  private lastDigest = ''

  constructor (private readonly opts: ConfigWatcherOptions) {
    this.dir = resolve(opts.dir)
    this.log = opts.log
    this.metrics = new ConfigMetrics(opts.registry)
    this.rootNamespace = opts.rootNamespace
    this.trigger = new ChangeTrigger({
      dir: this.dir,
      fingerprint: async () => await directoryFingerprint(this.dir),
      reload: async () => { await this.loadOnce() },
      log: this.log,
      what: 'config directory',
      pollMs: opts.pollMs,
      debounceMs: opts.debounceMs
    })
  }

  private get closed (): boolean { return this.trigger.closed }

  /** Starts watching; resolves after the first load (or the saved configuration, when the directory cannot be read). */
  async start (listener: ConfigListener): Promise<void> {
    if (this.listener !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `config watcher for ${this.dir} already started`)
    this.listener = listener
    const saved = this.opts.saved ?? null
    if (saved !== null && saved.rootNamespace === (this.rootNamespace ?? CONFIG_DEFAULTS.rootNamespace)) this.admission.seed(saved.documents, saved.rootNamespace)
    this.trigger.start()
    await this.trigger.run()
    if (this.snapshot === null && saved !== null && !this.closed) this.publishSaved(saved)
  }

  /** The snapshot in force, or null before the first. */
  current (): ConfigSnapshot | null { return this.snapshot }

  close (): void { this.trigger.close() }

  private async loadOnce (): Promise<void> {
    this.trigger.arm()
    this.trigger.seen = await directoryFingerprint(this.dir)
    let files: ConfigFile[]
    try {
      files = await readConfigFiles(this.dir)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      // Unreadable (missing directory): reported once, retried on every poll. A watch on a
      // removed directory is dead: drop it, so the next load re-arms it on the new one.
      this.trigger.disarm()
      if (this.changed(`unreadable\0${err.message}`)) this.reject(err)
      return
    }
    const hash = createHash('sha256')
    for (const f of files) hash.update(`${f.path}\0${f.text}\0`)
    if (this.closed || !this.changed(hash.digest('hex'))) return
    const snapshot = this.admission.admit(files, { origin: this.dir, generation: (this.snapshot?.generation ?? 0) + 1, rootNamespace: this.rootNamespace })
    this.apply(snapshot)
  }

  private publishSaved (saved: SavedConfig): void {
    const snapshot = this.admission.admit(saved.documents, { origin: `saved configuration of ${saved.origin} (${saved.savedAt})`, generation: 1, rootNamespace: saved.rootNamespace })
    this.log.warn({ dir: this.dir, saved: saved.savedAt, objects: snapshot.objects.length }, 'the configuration directory cannot be read: the saved configuration serves until it can')
    this.apply(snapshot)
  }

  private apply (snapshot: ConfigSnapshot): void {
    this.snapshot = snapshot
    const changes = this.changes.next(snapshot.objects)
    logReportChanges(this.log, changes, { dir: this.dir, generation: snapshot.generation })
    this.metrics.objects.observe(snapshot.objects, changes.changed)
    const refused = snapshot.objects.filter((o) => o.state === 'refused').length
    if (changes.changed.some((r) => r.state === 'refused')) this.metrics.rejectedChange()
    this.metrics.applied(snapshot.generation, refused > 0)
    this.log.info({
      dir: this.dir, generation: snapshot.generation, files: snapshot.files.length,
      ...resourceCounts(snapshot),
      degraded: snapshot.objects.filter((o) => o.state === 'degraded').length, refused
    }, 'configuration applied')
    this.listener?.onSnapshot(snapshot)
  }

  /** Records the directory's state; false when it is the one already handled. */
  private changed (digest: string): boolean {
    if (digest === this.lastDigest) return false
    this.lastDigest = digest
    return true
  }

  private reject (err: ConfigError): void {
    if (this.closed) return
    this.metrics.rejectedChange()
    this.log.warn({
      dir: this.dir,
      code: err.code,
      generation: this.snapshot?.generation ?? 0,
      issues: err.issues.map(formatIssue)
    }, 'configuration directory cannot be read; the last configuration keeps serving')
    this.listener?.onRejected?.(err)
  }
}

/** A cheap fingerprint of a configuration directory: names, inodes, sizes, mtimes ("missing" when unreadable). */
export async function directoryFingerprint (dir: string): Promise<string> {
  try {
    const files = await listConfigFiles(dir)
    const parts = await Promise.all(files.map(async (f) => {
      const s = await stat(f).catch(() => null)
      return s === null ? `${f}:gone` : `${f}:${s.ino}:${s.size}:${s.mtimeMs}`
    }))
    return parts.join('|')
  } catch {
    return 'missing'
  }
}
