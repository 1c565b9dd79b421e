import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError } from '../errors'
import { REPO_ROOT } from '../native/binding'
import { writeFileAtomic } from '../util/atomic-write'
import { type ConfDirChange, ensureFerryEntry, removeFerryEntries } from './conf-dir'
import { cniEntry, type CniEntrySettings, FERRY_PLUGIN_TYPE } from './entry'
import { removeStateFile } from './state-file'

// Putting the ferry-cni plugin on a node and taking it off again (`ferry cni install` /
// `ferry cni uninstall`, the DaemonSet's init container, and the agent on SIGTERM when
// its DaemonSet is being deleted).
//
//   install    1. the binary into the CNI bin dir (atomically: a runtime may be running
//                 the old one), 2. Ferry's entry into the primary configuration — in
//                 this order, so the runtime never finds an entry without its binary.
//   uninstall  1. the entry out of every configuration, 2. the binary, 3. the state
//                 file — in this order, so a pod starting meanwhile finds either Ferry
//                 whole or no Ferry at all.

/** The plugin the build makes (npm run build:cni). */
export const PLUGIN_BINARY = join(REPO_ROOT, 'build', 'cni', FERRY_PLUGIN_TYPE)

export interface CniInstallOptions {
  readonly binDir: string
  readonly confDir: string
  /** The binary to copy (default: the build's). */
  readonly plugin?: string
  readonly entry: CniEntrySettings
}

export interface CniInstallResult {
  readonly binary: string
  readonly conf: ConfDirChange
}

export function installCni (o: CniInstallOptions): CniInstallResult {
  const source = o.plugin ?? PLUGIN_BINARY
  let bytes: Buffer
  try {
    bytes = readFileSync(source)
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot read the ferry-cni plugin ${source}${source === PLUGIN_BINARY ? ' (npm run build:cni builds it)' : ''}: ${(err as Error).message}`, { cause: err })
  }
  const binary = join(o.binDir, FERRY_PLUGIN_TYPE)
  try {
    writeFileAtomic(binary, bytes, 0o755)
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot install the ferry-cni plugin as ${binary}: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
  return { binary, conf: ensureFerryEntry(o.confDir, cniEntry(o.entry)) }
}

export interface CniUninstallResult {
  /** Configuration files Ferry's entry was removed from. */
  readonly confs: readonly string[]
  readonly binaryRemoved: boolean
  readonly stateFileRemoved: boolean
  /** Configuration files that could not be cleaned (not valid JSON, not writable). */
  readonly errors: readonly Error[]
}

/** `binDir` null: the binary is left where it is. */
export function uninstallCni (o: { binDir: string | null, confDir: string, stateFile: string }): CniUninstallResult {
  const { changed, errors } = removeFerryEntries(o.confDir)
  let binaryRemoved = false
  if (o.binDir !== null) {
    const binary = join(o.binDir, FERRY_PLUGIN_TYPE)
    try {
      rmSync(binary)
      binaryRemoved = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ferryError('FERRY_ERR_CNI_CONF', `cannot remove ${binary}: ${(err as Error).message}`, { cause: err })
    }
  }
  return { confs: changed, binaryRemoved, stateFileRemoved: removeStateFile(o.stateFile), errors }
}
