import { readFile } from 'node:fs/promises'
import type { Registry } from 'prom-client'
import { ferryError } from '../errors'
import type { SavedConfig } from '../resources/saved-config'
import type { ConfigSnapshot } from '../resources/snapshot'
import type { ConfigListener } from '../resources/watcher'
import type { Logger } from '../telemetry/logger'

// Where the agent's policies come from: a watched directory (--config-dir; the lab and
// standalone nodes) or the controller's configuration stream (--config-source
// controller; a cluster), or nowhere (allow all). Both sources have one interface, so
// the agent compiles and swaps snapshots the same way whichever it uses. Each is loaded
// only when chosen: the stream brings gRPC and protobuf.js, the directory YAML. Either
// takes the configuration the agent saved before it restarted (--config-cache): the
// stream puts it in force at once, the directory uses it for the objects of a file that
// cannot be read (or the whole directory, when it cannot be read at all).

export interface PolicyConfigSource {
  /** Resolves after the first load (directory) or the first snapshot or a timeout (stream). */
  start (listener: ConfigListener): Promise<void>
  /** The last good snapshot, or null before the first. */
  current (): ConfigSnapshot | null
  close (): void
}

export interface ConfigSourceChoice {
  /** --config-dir */
  readonly configDir: string | null
  /** --config-source controller: policies from the controller, over the CA's connection settings. */
  readonly fromController: boolean
  /** The --ca-* options: the stream dials the same controller with the same roots and token. */
  readonly identity: { readonly caAddress: string, readonly caRoot: string, readonly caTokenFile: string } | null
  /** The configuration saved before this start (--config-cache), if any. */
  readonly saved?: SavedConfig | null
}

export interface OpenedConfigSource {
  readonly source: PolicyConfigSource
  /** For logs: the directory, or "controller HOST:PORT". */
  readonly origin: string
}

/** Picks and makes the source; null without one. Throws FERRY_ERR_INVALID_ARG / FERRY_ERR_CONFIG on bad settings. */
export async function openConfigSource (choice: ConfigSourceChoice, deps: { readonly log: Logger, readonly registry: Registry }): Promise<OpenedConfigSource | null> {
  if (choice.fromController) {
    if (choice.configDir !== null) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --config-dir and --config-source controller exclude each other')
    if (choice.identity === null) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --config-source controller needs the --ca-* options (the controller, its root and this node\'s token)')
    let caRootsPem: string
    try {
      caRootsPem = await readFile(choice.identity.caRoot, 'utf8')
    } catch (err) {
      throw ferryError('FERRY_ERR_CONFIG', `${choice.identity.caRoot}: cannot read the CA root: ${(err as Error).message}`, { cause: err })
    }
    const { ConfigStream } = require('./config-stream') as typeof import('./config-stream')
    const { tokenFromFile } = require('../identity/ca-client') as typeof import('../identity/ca-client')
    const stream = new ConfigStream({ address: choice.identity.caAddress, caRootsPem, token: tokenFromFile(choice.identity.caTokenFile), log: deps.log, registry: deps.registry, saved: choice.saved })
    return { source: stream, origin: stream.origin }
  }
  if (choice.configDir !== null) {
    const { ConfigDirectoryWatcher } = require('../resources/watcher') as typeof import('../resources/watcher')
    const watcher = new ConfigDirectoryWatcher({ dir: choice.configDir, log: deps.log, registry: deps.registry, saved: choice.saved })
    return { source: watcher, origin: watcher.dir }
  }
  return null
}
