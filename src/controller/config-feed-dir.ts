import { resolve } from 'node:path'
import { ConfigError } from '../resources/issues'
import { readConfigFiles } from '../resources/loader'
import { directoryFingerprint } from '../resources/watcher'
import { ChangeTrigger } from '../util/change-trigger'
import { type ConfigFeed, type ConfigVersion, ConfigVersioner, type VersionerOptions } from './config-feed'

// The configuration from a directory (`ferry controller --config-dir DIR`): the lab's
// and the standalone case. The same files, rules and watch as an agent's --config-dir
// (src/resources, src/util/change-trigger.ts); each object in force goes on the stream
// as its own document, cut from its file with the line it starts at.

export class DirectoryConfigFeed implements ConfigFeed {
  readonly kind = 'directory'
  readonly dir: string
  private readonly versioner: ConfigVersioner
  private readonly trigger: ChangeTrigger
  private lastUnreadable = ''

  constructor (private readonly opts: VersionerOptions & { readonly dir: string, readonly pollMs?: number, readonly debounceMs?: number }) {
    this.dir = resolve(opts.dir)
    this.versioner = new ConfigVersioner(opts)
    this.trigger = new ChangeTrigger({
      dir: this.dir,
      fingerprint: async () => await directoryFingerprint(this.dir),
      reload: async () => { await this.load() },
      log: opts.log,
      what: 'config directory',
      pollMs: opts.pollMs,
      debounceMs: opts.debounceMs
    })
  }

  async start (onVersion: (v: ConfigVersion) => void, _waitMs: number): Promise<void> {
    this.versioner.start(onVersion)
    this.trigger.start()
    await this.trigger.run()
  }

  current (): ConfigVersion | null { return this.versioner.current() }

  close (): void { this.trigger.close() }

  private async load (): Promise<void> {
    this.trigger.arm()
    this.trigger.seen = await directoryFingerprint(this.dir)
    try {
      const files = await readConfigFiles(this.dir)
      this.lastUnreadable = ''
      if (!this.trigger.closed) this.versioner.offer(files, this.dir)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      this.trigger.disarm()
      if (err.message !== this.lastUnreadable) {
        this.lastUnreadable = err.message
        this.opts.log.warn({ dir: this.dir, code: err.code, err: err.message }, 'configuration directory unreadable; the version in force keeps serving')
      }
    }
  }
}
