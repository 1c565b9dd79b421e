import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Registry } from 'prom-client'
import { FILE_SOURCE_DEFAULTS } from '../discovery/source-file'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { trace } from '../telemetry/trace'
import { ConfigError, formatIssue } from './issues'
import { buildSnapshot, type ConfigFile, listConfigFiles, readConfigFiles } from './loader'
import { ConfigMetrics } from './metrics'
import type { ConfigSnapshot } from './snapshot'

// Watches a configuration directory and publishes a new ConfigSnapshot only when the
// whole directory is valid. The pattern is the file discovery source's: watch the
// directory (so renames and ConfigMap `..data` swaps are seen), debounce the burst of
// events one change makes, poll slowly as a fallback, never run two loads at once, and
// report a bad state once — here also to a counter and the log — while the last good
// snapshot keeps serving.

const TRACE = trace('config')

export const CONFIG_WATCH_DEFAULTS = Object.freeze({
  pollMs: FILE_SOURCE_DEFAULTS.pollMs,
  debounceMs: FILE_SOURCE_DEFAULTS.debounceMs
})

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
  private readonly pollMs: number
  private readonly debounceMs: number
  private listener: ConfigListener | null = null
  private fsWatcher: FSWatcher | null = null
  private pollTimer: NodeJS.Timeout | null = null
  private debounceTimer: NodeJS.Timeout | null = null
  private snapshot: ConfigSnapshot | null = null
  /** Digest of the last directory state handled, valid or not, and of the one serving. */
  private lastDigest = ''
  private goodDigest = ''
  private lastStat = ''
  private loading = false
  private reloadAgain = false
  private closed = false

  constructor (opts: ConfigWatcherOptions) {
    this.dir = resolve(opts.dir)
    this.log = opts.log
    this.metrics = new ConfigMetrics(opts.registry)
    this.rootNamespace = opts.rootNamespace
    this.pollMs = opts.pollMs ?? CONFIG_WATCH_DEFAULTS.pollMs
    this.debounceMs = opts.debounceMs ?? CONFIG_WATCH_DEFAULTS.debounceMs
  }

  /** Starts watching; resolves after the first load (good or rejected). */
  async start (listener: ConfigListener): Promise<void> {
    if (this.listener !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `config watcher for ${this.dir} already started`)
    this.listener = listener
    this.watchDir()
    this.pollTimer = setInterval(() => { this.poll() }, this.pollMs)
    this.pollTimer.unref()
    await this.load()
  }

  /** The last good snapshot, or null before the first. */
  current (): ConfigSnapshot | null { return this.snapshot }

  close (): void {
    this.closed = true
    this.fsWatcher?.close()
    this.fsWatcher = null
    if (this.pollTimer !== null) clearInterval(this.pollTimer)
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer)
    this.pollTimer = this.debounceTimer = null
  }

  private watchDir (): void {
    if (this.fsWatcher !== null || this.closed) return
    try {
      this.fsWatcher = watch(this.dir, { persistent: false }, () => { this.schedule() })
      this.fsWatcher.on('error', (err) => {
        // The directory went away: the poll keeps going and re-arms the watch when it is back.
        this.log.warn({ err, dir: this.dir }, 'config directory watch failed; polling')
        this.fsWatcher?.close()
        this.fsWatcher = null
      })
    } catch (err) {
      if (TRACE.on) TRACE('watch failed', { dir: this.dir, err: (err as Error).message })
    }
  }

  private schedule (): void {
    if (this.closed || this.debounceTimer !== null) return
    this.debounceTimer = setTimeout(() => { this.debounceTimer = null; void this.load() }, this.debounceMs)
  }

  private poll (): void {
    this.statKey().then((key) => { if (key !== this.lastStat) this.schedule() }, () => {})
  }

  /** A cheap fingerprint of the directory: names, inodes, sizes, mtimes. */
  private async statKey (): Promise<string> {
    try {
      const files = await listConfigFiles(this.dir)
      const parts = await Promise.all(files.map(async (f) => {
        const s = await stat(f).catch(() => null)
        return s === null ? `${f}:gone` : `${f}:${s.ino}:${s.size}:${s.mtimeMs}`
      }))
      return parts.join('|')
    } catch {
      return 'missing'
    }
  }

  private async load (): Promise<void> {
    if (this.closed) return
    if (this.loading) { this.reloadAgain = true; return }
    this.loading = true
    try {
      do {
        this.reloadAgain = false
        await this.loadOnce()
      } while (this.reloadAgain && !this.closed)
    } finally {
      this.loading = false
    }
  }

  private async loadOnce (): Promise<void> {
    this.watchDir()
    this.lastStat = await this.statKey()
    let files: ConfigFile[]
    try {
      files = await readConfigFiles(this.dir)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      // Unreadable (missing directory): reported once, retried on every poll. A watch on a
      // removed directory is dead: drop it, so the next load re-arms it on the new one.
      this.fsWatcher?.close()
      this.fsWatcher = null
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
