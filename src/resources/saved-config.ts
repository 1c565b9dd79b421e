import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ferryError } from '../errors'
import { OBJECT_STATES, type ObjectReport } from './reports'
import type { ConfigSnapshot, SourceDocument } from './snapshot'

// The last good configuration on disk: the documents of every object in force (each
// object's last valid version), the root namespace they were judged with, and the
// objects refused upstream. The agent keeps one (--config-cache) so that a restart never
// falls back to deny-all; the controller keeps one in its data directory so that it
// serves the last good state at start, before its feed has read anything.
//
// Written atomically (a temporary file in the same directory, fsynced, renamed over the
// old one), so a crash leaves the old file or the new one. Read strictly: anything that
// is not exactly this shape is "corrupt" (FERRY_ERR_CONFIG_STATE) and the caller ignores it.

export const SAVED_CONFIG_FORMAT = 'ferry.dev/saved-config/v1'
/** Larger than any sane configuration; a bigger file is not read. */
const MAX_BYTES = 64 * 1024 * 1024
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

export interface SavedConfig {
  readonly format: typeof SAVED_CONFIG_FORMAT
  /** ISO time of the write. */
  readonly savedAt: string
  /** Where the configuration came from (a directory, "controller HOST:PORT", "kubernetes …"). */
  readonly origin: string
  readonly rootNamespace: string
  readonly documents: readonly SourceDocument[]
  /** Objects refused where the configuration was judged before it came here (the controller's). */
  readonly upstreamReports: readonly ObjectReport[]
  /** Source-specific facts for logs (the controller's version and instance). */
  readonly meta: Readonly<Record<string, string | number>>
}

export function savedConfigOf (snapshot: ConfigSnapshot, upstreamReports: readonly ObjectReport[], meta: Readonly<Record<string, string | number>> = {}): SavedConfig {
  return {
    format: SAVED_CONFIG_FORMAT,
    savedAt: new Date().toISOString(),
    origin: snapshot.origin,
    rootNamespace: snapshot.rootNamespace,
    documents: snapshot.documents,
    upstreamReports,
    meta
  }
}

/** The saved configuration at `path`; null when there is none. Throws FERRY_ERR_CONFIG_STATE when it is unreadable or corrupt. */
export async function readSavedConfig (path: string): Promise<SavedConfig | null> {
  let text: string
  try {
    const s = await stat(path)
    if (s.size > MAX_BYTES) throw corrupt(path, `${s.size} bytes, more than ${MAX_BYTES}`)
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    if ((err as { code?: string }).code === 'FERRY_ERR_CONFIG_STATE') throw err
    throw ferryError('FERRY_ERR_CONFIG_STATE', `${path}: cannot read the saved configuration: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
  let v: any
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw corrupt(path, `not JSON (${(err as Error).message})`)
  }
  if (v === null || typeof v !== 'object' || v.format !== SAVED_CONFIG_FORMAT) throw corrupt(path, `not a ${SAVED_CONFIG_FORMAT} document`)
  if (typeof v.savedAt !== 'string' || typeof v.origin !== 'string') throw corrupt(path, 'savedAt and origin must be strings')
  if (typeof v.rootNamespace !== 'string' || !NAMESPACE.test(v.rootNamespace)) throw corrupt(path, 'rootNamespace is not a namespace name')
  if (!Array.isArray(v.documents) || !v.documents.every(isDocument)) throw corrupt(path, 'documents must be a list of { path, text, line }')
  if (!Array.isArray(v.upstreamReports) || !v.upstreamReports.every(isReport)) throw corrupt(path, 'upstreamReports must be a list of object reports')
  if (v.meta === null || typeof v.meta !== 'object' || Array.isArray(v.meta)) throw corrupt(path, 'meta must be a map')
  return v as SavedConfig
}

/** Writes `config` to `path` atomically (tmp + fsync + rename), making its directory (0700) if needed. */
export async function writeSavedConfig (path: string, config: SavedConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`)
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(JSON.stringify(config) + '\n')
    await fh.sync()
  } catch (err) {
    await fh.close()
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  await rename(tmp, path)
}

function isDocument (d: any): boolean {
  return d !== null && typeof d === 'object' && typeof d.path === 'string' && d.path !== '' && typeof d.text === 'string' &&
    (d.line === undefined || (Number.isSafeInteger(d.line) && d.line >= 1))
}

function isReport (r: any): boolean {
  return r !== null && typeof r === 'object' && OBJECT_STATES.includes(r.state) && typeof r.object === 'string' &&
    typeof r.file === 'string' && Number.isSafeInteger(r.line) && Array.isArray(r.issues) &&
    r.issues.every((i: any) => i !== null && typeof i === 'object' && typeof i.file === 'string' && typeof i.message === 'string')
}

function corrupt (path: string, why: string): Error {
  return ferryError('FERRY_ERR_CONFIG_STATE', `${path}: the saved configuration is corrupt (${why}); ignored`)
}

/**
 * Saves configurations to one file, one write at a time: a save while a write is under
 * way replaces any save still waiting, so the file always ends with the latest. Failures
 * are logged (once per distinct error) and never thrown: the configuration in force
 * does not depend on the file.
 */
export class SavedConfigWriter {
  private writing: Promise<void> | null = null
  private next: SavedConfig | null = null
  private lastError = ''

  constructor (readonly path: string, private readonly log: { warn: (obj: object, msg: string) => void, debug: (obj: object, msg: string) => void }) {}

  save (config: SavedConfig): void {
    this.next = config
    this.writing ??= this.drain()
  }

  /** Resolves when every save so far is on disk (or failed). */
  async flushed (): Promise<void> {
    while (this.writing !== null) await this.writing
  }

  private async drain (): Promise<void> {
    while (this.next !== null) {
      const config = this.next
      this.next = null
      try {
        await writeSavedConfig(this.path, config)
        this.lastError = ''
        this.log.debug({ path: this.path, documents: config.documents.length }, 'configuration saved')
      } catch (err) {
        const message = (err as Error).message
        if (message !== this.lastError) this.log.warn({ path: this.path, code: 'FERRY_ERR_CONFIG_STATE', err: message }, 'cannot save the configuration; the one in force is unaffected')
        this.lastError = message
      }
    }
    this.writing = null
  }
}

/** The saved configuration at `path`, or null when there is none or it is corrupt (then logged). */
export async function loadSavedConfig (path: string, log: { warn: (obj: object, msg: string) => void }): Promise<SavedConfig | null> {
  try {
    return await readSavedConfig(path)
  } catch (err) {
    log.warn({ path, code: (err as { code?: string }).code, err: (err as Error).message }, 'saved configuration not used')
    return null
  }
}
