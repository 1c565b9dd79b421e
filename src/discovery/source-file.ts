import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { ferryError, type FerryError, isFerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { trace } from '../telemetry/trace'
import { parseClusterList } from './cluster-list'
import type { ClusterSnapshot } from './model'
import type { DiscoverySource, DiscoveryWatcher } from './source'

// The `file` discovery source: a Kubernetes `v1 List` JSON file that its writer
// replaces atomically (write a temp file, rename over). We watch the directory, not the
// file — a rename replaces the inode a file watch would follow — and poll slowly as a
// fallback for filesystems where inotify says nothing. Each change is re-read; an
// invalid file is reported once and the last good snapshot stays current.

const TRACE = trace('discovery')

export const FILE_SOURCE_DEFAULTS = Object.freeze({
  /** Fallback poll period; inotify normally reacts first. */
  pollMs: 2000,
  /** Coalesces the burst of events one rename produces. */
  debounceMs: 25
})

export interface FileSourceOptions {
  readonly path: string
  readonly log: Logger
  readonly pollMs?: number
  readonly debounceMs?: number
}

export class FileDiscoverySource implements DiscoverySource {
  private readonly path: string
  private readonly log: Logger
  private readonly pollMs: number
  private readonly debounceMs: number
  private watcher: DiscoveryWatcher | null = null
  private fsWatcher: FSWatcher | null = null
  private pollTimer: NodeJS.Timeout | null = null
  private debounceTimer: NodeJS.Timeout | null = null
  private snapshot: ClusterSnapshot | null = null
  private lastText: string | null = null
  private lastStat = ''
  private lastErrorKey = ''
  private readFailing = false
  private loading = false
  private reloadAgain = false
  private closed = false

  constructor (opts: FileSourceOptions) {
    this.path = resolve(opts.path)
    this.log = opts.log
    this.pollMs = opts.pollMs ?? FILE_SOURCE_DEFAULTS.pollMs
    this.debounceMs = opts.debounceMs ?? FILE_SOURCE_DEFAULTS.debounceMs
  }

  start (watcher: DiscoveryWatcher): void {
    if (this.watcher !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `discovery source for ${this.path} already started`)
    this.watcher = watcher
    const name = basename(this.path)
    try {
      this.fsWatcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename === null || filename === name) this.schedule()
      })
      this.fsWatcher.on('error', (err) => {
        // The directory went away: the poll keeps going and will notice it coming back.
        this.log.warn({ err, path: this.path }, 'cluster file watch failed; polling only')
        this.fsWatcher?.close()
        this.fsWatcher = null
      })
    } catch (err) {
      this.log.warn({ err, path: this.path }, 'cannot watch the cluster file directory; polling only')
    }
    this.pollTimer = setInterval(() => { this.poll() }, this.pollMs)
    this.pollTimer.unref()
    void this.load()
  }

  current (): ClusterSnapshot | null { return this.snapshot }

  close (): void {
    this.closed = true
    this.fsWatcher?.close()
    this.fsWatcher = null
    if (this.pollTimer !== null) clearInterval(this.pollTimer)
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer)
    this.pollTimer = this.debounceTimer = null
  }

  private schedule (): void {
    if (this.closed || this.debounceTimer !== null) return
    this.debounceTimer = setTimeout(() => { this.debounceTimer = null; void this.load() }, this.debounceMs)
  }

  private poll (): void {
    stat(this.path).then((s) => {
      const key = `${s.ino}:${s.size}:${s.mtimeMs}`
      if (key !== this.lastStat) this.schedule()
    }, () => {
      if (this.lastStat !== 'missing') this.schedule()
    })
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
    let text: string
    try {
      const s = await stat(this.path)
      this.lastStat = `${s.ino}:${s.size}:${s.mtimeMs}`
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      this.lastStat = 'missing'
      this.readFailing = true
      const code = (err as NodeJS.ErrnoException).code
      this.report(ferryError('FERRY_ERR_CONFIG', `${this.path}: cannot read the cluster file (${code ?? 'error'})`, { cause: err, errno: code }))
      return
    }
    if (this.readFailing) { this.readFailing = false; this.lastErrorKey = '' }
    if (this.closed || text === this.lastText) return
    this.lastText = text
    let snapshot: ClusterSnapshot
    try {
      snapshot = parseClusterList(text, this.path, (this.snapshot?.generation ?? 0) + 1)
    } catch (err) {
      if (!isFerryError(err)) throw err
      this.report(err)
      return
    }
    this.snapshot = snapshot
    this.lastErrorKey = ''
    if (TRACE.on) TRACE('snapshot', { path: this.path, generation: snapshot.generation, pods: snapshot.pods.length, services: snapshot.services.length })
    this.watcher?.onSnapshot(snapshot)
  }

  /** Reports an error once per distinct message, so a bad file does not flood the log every poll. */
  private report (err: FerryError): void {
    if (this.closed || err.message === this.lastErrorKey) return
    this.lastErrorKey = err.message
    this.watcher?.onError(err)
  }
}
