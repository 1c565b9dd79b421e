import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Logger } from '../telemetry/logger'

// When to re-read something on disk that its writer replaces (a cluster file renamed
// over, a configuration directory, a ConfigMap's `..data` swap). Shared by the file
// discovery source and the configuration watcher:
//   - watch the *directory* (a rename replaces the inode a file watch would follow);
//   - debounce the burst of events one change makes;
//   - poll a cheap fingerprint slowly, for filesystems where inotify says nothing and
//     for a directory that went away and came back (the next reload re-arms the watch);
//   - never run two reloads at once: a change during a reload runs it once more.
// What a reload does, and how it reports a bad state, is the owner's business.

export const WATCH_DEFAULTS = Object.freeze({
  /** Fallback poll period; inotify normally reacts first. */
  pollMs: 2000,
  /** Coalesces the burst of events one rename produces. */
  debounceMs: 25
})

export interface ChangeTriggerOptions {
  readonly dir: string
  /** Only events naming this entry count (events without a name always do). Default: all. */
  readonly name?: string
  /** A cheap fingerprint of the watched state (e.g. inode, size, mtime); "missing" when absent. */
  readonly fingerprint: () => Promise<string>
  readonly reload: () => Promise<void>
  readonly log: Logger
  /** What is watched, for log lines: "cluster file", "config directory". */
  readonly what: string
  readonly pollMs?: number
  readonly debounceMs?: number
}

export class ChangeTrigger {
  /** Fingerprint of the state the last reload read; the reload sets it before reading. */
  seen = ''
  private fsWatcher: FSWatcher | null = null
  private pollTimer: NodeJS.Timeout | null = null
  private debounceTimer: NodeJS.Timeout | null = null
  private running = false
  private again = false
  private stopped = false

  constructor (private readonly opts: ChangeTriggerOptions) {}

  get closed (): boolean { return this.stopped }

  /** Arms the watch and the poll; the first reload is the owner's call (`run()`). */
  start (): void {
    this.arm()
    this.pollTimer = setInterval(() => { this.poll() }, this.opts.pollMs ?? WATCH_DEFAULTS.pollMs)
    this.pollTimer.unref()
  }

  /** (Re)arms the directory watch if it is not armed; a missing directory leaves it to the poll. */
  arm (): void {
    if (this.fsWatcher !== null || this.stopped) return
    const { dir, name, log, what } = this.opts
    try {
      this.fsWatcher = watch(dir, { persistent: false }, (_event, filename) => {
        if (name === undefined || filename === null || filename === name) this.schedule()
      })
      this.fsWatcher.on('error', (err) => {
        // The directory went away: the poll keeps going and the next reload re-arms.
        log.warn({ err, dir }, `${what} watch failed; polling`)
        this.disarm()
      })
    } catch (err) {
      log.debug({ err, dir }, `cannot watch the ${what} yet; polling`)
    }
  }

  /** Drops a watch that can no longer fire (its directory was removed). */
  disarm (): void {
    this.fsWatcher?.close()
    this.fsWatcher = null
  }

  schedule (): void {
    if (this.stopped || this.debounceTimer !== null) return
    this.debounceTimer = setTimeout(() => { this.debounceTimer = null; void this.run() }, this.opts.debounceMs ?? WATCH_DEFAULTS.debounceMs)
  }

  /** Runs the reload now, or once more after the one in progress. */
  async run (): Promise<void> {
    if (this.stopped) return
    if (this.running) { this.again = true; return }
    this.running = true
    try {
      do {
        this.again = false
        await this.opts.reload()
      } while (this.again && !this.stopped)
    } finally {
      this.running = false
    }
  }

  close (): void {
    this.stopped = true
    this.disarm()
    if (this.pollTimer !== null) clearInterval(this.pollTimer)
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer)
    this.pollTimer = this.debounceTimer = null
  }

  private poll (): void {
    this.opts.fingerprint().then((key) => { if (key !== this.seen) this.schedule() }, () => {})
  }
}

/** Inode, size and mtime of one file ("missing" when absent): changes when it is replaced or rewritten. */
export async function fileFingerprint (path: string): Promise<string> {
  try {
    const s = await stat(path)
    return `${s.ino}:${s.size}:${s.mtimeMs}`
  } catch {
    return 'missing'
  }
}
