import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { isFerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { ChangeTrigger } from '../util/change-trigger'
import { confFiles, ensureFerryEntry } from './conf-dir'

// The agent keeps Ferry's entry in the node's CNI configuration (--cni-conf-dir): the
// primary CNI may rewrite its file at any time (a restart of its own DaemonSet, an
// upgrade), dropping the entry, and a primary configuration may appear only after the
// agent started. Every change of the directory (inotify, else a slow poll) checks the
// primary file and re-inserts the entry when it is missing; Ferry's own writes trigger
// one more check, which finds nothing to do.

export interface ConfKeeperOptions {
  readonly dir: string
  readonly entry: Record<string, unknown>
  readonly log: Logger
  readonly pollMs?: number
  readonly debounceMs?: number
}

export class CniConfKeeper {
  private readonly trigger: ChangeTrigger
  private lastProblem = ''
  private waitingLogged = false

  constructor (private readonly o: ConfKeeperOptions) {
    this.trigger = new ChangeTrigger({
      dir: o.dir,
      fingerprint: async () => fingerprint(o.dir),
      reload: async () => { this.check() },
      log: o.log,
      what: 'CNI configuration directory',
      pollMs: o.pollMs,
      debounceMs: o.debounceMs
    })
  }

  /** Checks now, then on every change. */
  async start (): Promise<void> {
    this.trigger.start()
    await this.trigger.run()
  }

  close (): void { this.trigger.close() }

  private check (): void {
    this.trigger.seen = fingerprint(this.o.dir)
    const { log, dir } = this.o
    try {
      const change = ensureFerryEntry(dir, this.o.entry)
      this.lastProblem = ''
      if (change.action === 'none' && change.file === null) {
        if (!this.waitingLogged) log.warn({ dir }, 'no CNI configuration on this node yet: Ferry\'s entry goes in when the primary CNI writes one')
        this.waitingLogged = true
        return
      }
      this.waitingLogged = false
      if (change.action === 'converted') log.info({ file: change.file, from: change.from }, 'CNI configuration: converted to a list with Ferry\'s entry')
      else if (change.action !== 'none') log.info({ file: change.file, action: change.action }, 'CNI configuration: Ferry\'s entry inserted after the primary plugin')
    } catch (err) {
      if (!isFerryError(err)) throw err
      if (err.message === this.lastProblem) return
      this.lastProblem = err.message
      log.error({ code: err.code, err: err.message, dir }, 'cannot keep Ferry\'s entry in the CNI configuration; will try again on the next change')
    }
  }
}

/** Names, sizes and modification times of the configuration files (and the directory's own). */
function fingerprint (dir: string): string {
  try {
    readdirSync(dir)
  } catch {
    return 'missing'
  }
  return confFiles(dir).map((n) => {
    try {
      const s = statSync(join(dir, n))
      return `${n}:${s.ino}:${s.size}:${s.mtimeMs}`
    } catch {
      return n
    }
  }).join('|')
}
