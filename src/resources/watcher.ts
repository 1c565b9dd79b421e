import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Registry } from 'prom-client'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { ChangeTrigger, WATCH_DEFAULTS } from '../util/change-trigger'
import { ConfigError, formatIssue } from './issues'
import { buildSnapshot, type ConfigFile, listConfigFiles, readConfigFiles } from './loader'
import { ConfigMetrics } from './metrics'
import type { ConfigSnapshot } from './snapshot'

// Watches a configuration directory and publishes a new ConfigSnapshot only when the
// whole directory is valid. When to reload (directory watch, debounce, slow poll, one
// load at a time) is src/util/change-trigger.ts's job, shared with the file discovery
// source; here a bad state is reported once — to a counter, the log and the listener —
// while the last good snapshot keeps serving.

export const CONFIG_WATCH_DEFAULTS = WATCH_DEFAULTS

export interface ConfigListener {
  /** A new, frozen, valid snapshot (generation strictly increasing). */
  onSnapshot (snapshot: ConfigSnapshot): void
  /** The directory changed into an invalid state; the last good snapshot stays current. */
  onRejected? (err: ConfigError): void
}

export interface ConfigWatcherOptions {
  readonly dir: string
  readonly log: Logger
  /** Where the rejection counter and generation gauge go (the agent's registry). */
  readonly registry?: Registry
  readonly rootNamespace?: string
  readonly pollMs?: number
  readonly debounceMs?: number
}

export class ConfigDirectoryWatcher {
  readonly dir: string
  readonly metrics: ConfigMetrics
  private readonly log: Logger
  private readonly rootNamespace: string | undefined
  private readonly trigger: ChangeTrigger
  private listener: ConfigListener | null = null
  private snapshot: ConfigSnapshot | null = null
  /** Digest of the last directory state handled, valid or not, and of the one serving. */
  private lastDigest = ''
  private goodDigest = ''

  constructor (opts: ConfigWatcherOptions) {
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

  /** Starts watching; resolves after the first load (good or rejected). */
  async start (listener: ConfigListener): Promise<void> {
    if (this.listener !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `config watcher for ${this.dir} already started`)
    this.listener = listener
    this.trigger.start()
    await this.trigger.run()
  }

  /** The last good snapshot, or null before the first. */
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
    const digest = hash.digest('hex')
    if (this.closed || !this.changed(digest)) return
    if (digest === this.goodDigest && this.snapshot !== null) {
      // Back to exactly what is serving: not a new generation, just no longer stale.
      this.metrics.applied(this.snapshot.generation)
      this.log.info({ dir: this.dir, generation: this.snapshot.generation }, 'configuration valid again, unchanged')
      return
    }
    let snapshot: ConfigSnapshot
    try {
      snapshot = buildSnapshot(files, { origin: this.dir, generation: (this.snapshot?.generation ?? 0) + 1, rootNamespace: this.rootNamespace })
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      this.reject(err)
      return
    }
    this.snapshot = snapshot
    this.goodDigest = digest
    this.metrics.applied(snapshot.generation)
    this.log.info({
      dir: this.dir, generation: snapshot.generation, files: snapshot.files.length,
      authorizationPolicies: snapshot.authorizationPolicies.length, peerAuthentications: snapshot.peerAuthentications.length
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
    }, 'configuration rejected; the last good configuration keeps serving')
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
