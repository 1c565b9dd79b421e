import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { ferryError, type FerryError, isFerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { trace } from '../telemetry/trace'
import { ChangeTrigger, WATCH_DEFAULTS, fileFingerprint } from '../util/change-trigger'
import { digestOf } from '../util/digest'
import { parseClusterList } from './cluster-list'
import type { ClusterSnapshot } from './model'
import type { DiscoverySource, DiscoveryWatcher } from './source'

// The `file` discovery source: a Kubernetes `v1 List` JSON file that its writer
// replaces atomically (write a temp file, rename over). When to re-read is
// src/util/change-trigger.ts's job; each change is re-read here, an invalid file is
// reported once and the last good snapshot stays current.

const TRACE = trace('discovery')

export const FILE_SOURCE_DEFAULTS = WATCH_DEFAULTS

export interface FileSourceOptions {
  readonly path: string
  readonly log: Logger
  readonly pollMs?: number
  readonly debounceMs?: number
}

export class FileDiscoverySource implements DiscoverySource {
  private readonly path: string
  private readonly log: Logger
  private readonly trigger: ChangeTrigger
  private watcher: DiscoveryWatcher | null = null
  private snapshot: ClusterSnapshot | null = null
  /** digestOf the bytes the current snapshot was parsed from (the text itself is not kept). */
  private lastDigest: string | null = null
  private lastErrorKey = ''
  private readFailing = false

  constructor (opts: FileSourceOptions) {
    this.path = resolve(opts.path)
    this.log = opts.log
    this.trigger = new ChangeTrigger({
      dir: dirname(this.path),
      name: basename(this.path),
      fingerprint: async () => await fileFingerprint(this.path),
      reload: async () => { await this.loadOnce() },
      log: this.log,
      what: 'cluster file',
      pollMs: opts.pollMs,
      debounceMs: opts.debounceMs
    })
  }

  private get closed (): boolean { return this.trigger.closed }

  start (watcher: DiscoveryWatcher): void {
    if (this.watcher !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `discovery source for ${this.path} already started`)
    this.watcher = watcher
    this.trigger.start()
    void this.trigger.run()
  }

  current (): ClusterSnapshot | null { return this.snapshot }

  close (): void { this.trigger.close() }

  private async loadOnce (): Promise<void> {
    let bytes: Buffer
    this.trigger.seen = await fileFingerprint(this.path)
    try {
      bytes = await readFile(this.path)
    } catch (err) {
      this.trigger.seen = 'missing'
      this.readFailing = true
      const code = (err as NodeJS.ErrnoException).code
      this.report(ferryError('FERRY_ERR_CONFIG', `${this.path}: cannot read the cluster file (${code ?? 'error'})`, { cause: err, errno: code }))
      return
    }
    if (this.readFailing) { this.readFailing = false; this.lastErrorKey = '' }
    // A rewrite with the same content (a new inode, another mtime) is not a change.
    const digest = digestOf(bytes)
    if (this.closed || digest === this.lastDigest) return
    this.lastDigest = digest
    const text = bytes.toString('utf8')
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

