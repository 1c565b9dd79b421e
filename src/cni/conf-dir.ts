import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError, isFerryError } from '../errors'
import { writeFileAtomic } from '../util/atomic-write'
import { configKind, confToConflist, hasFerryEntry, withFerryEntry, withoutFerryEntry } from './conflist'

// Ferry's entry in a node's CNI configuration directory (/etc/cni/net.d). A runtime
// (containerd, CRI-O, through libcni) uses the lexicographically first *.conf,
// *.conflist or *.json file there: the primary CNI's. Ferry's entry goes last in that
// file's plugins list; a lone network configuration is first turned into a list, written
// as <name>.conflist (which sorts right after <name>.conf) before <name>.conf is
// removed, so the runtime always finds one whole configuration. Every write is atomic
// (src/util/atomic-write.ts) and keeps the file's mode.
//
// A first file that does not parse (a primary CNI caught writing in place) is left
// alone, and nothing else is touched until it does: editing the second file would chain
// Ferry to a configuration the runtime does not use.

export const CONF_EXTENSIONS = Object.freeze(['.conf', '.conflist', '.json'])

export type ConfDirChange =
  | { readonly action: 'none', readonly file: string | null }
  | { readonly action: 'inserted' | 'replaced', readonly file: string }
  | { readonly action: 'converted', readonly file: string, readonly from: string }

/** The configuration files in libcni's order (by name). */
export function confFiles (dir: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot read the CNI configuration directory ${dir}: ${(err as Error).message}`, { cause: err })
  }
  return names.filter((n) => !n.startsWith('.') && CONF_EXTENSIONS.some((e) => n.endsWith(e))).sort()
}

/** The file the runtime uses, or null while there is none. */
export function primaryConfFile (dir: string): string | null {
  const first = confFiles(dir)[0]
  return first === undefined ? null : join(dir, first)
}

/** Makes the primary configuration end with `entry`; does nothing when it already does (or when there is no primary yet). */
export function ensureFerryEntry (dir: string, entry: Record<string, unknown>): ConfDirChange {
  const file = primaryConfFile(dir)
  if (file === null) return { action: 'none', file: null }
  const { text, mode } = readConf(file)
  const kind = configKind(text, file)
  if (kind === 'other') throw ferryError('FERRY_ERR_CNI_CONF', `${file}: neither a network configuration ("type") nor a list ("plugins"); left as it is`)
  if (kind === 'list') {
    const edit = withFerryEntry(text, entry, file)
    if (!edit.changed) return { action: 'none', file }
    write(file, edit.text, mode)
    return { action: hasFerryEntry(text) ? 'replaced' : 'inserted', file }
  }
  const target = file.replace(/\.(conf|json)$/, '.conflist')
  write(target, withFerryEntry(confToConflist(text, file), entry, file).text, mode)
  // The list sorts right after the lone file: until this unlink the runtime keeps using the old one.
  try { rmSync(file) } catch (err) { throw ferryError('FERRY_ERR_CNI_CONF', `${file}: converted to ${target} but cannot remove it: ${(err as Error).message}`, { cause: err }) }
  return { action: 'converted', file: target, from: file }
}

/** Removes Ferry's entry from every configuration of the directory; returns the files changed. A file that does not parse is reported, and the others are still cleaned. */
export function removeFerryEntries (dir: string): { changed: string[], errors: Error[] } {
  const changed: string[] = []
  const errors: Error[] = []
  for (const name of confFiles(dir)) {
    const file = join(dir, name)
    try {
      const { text, mode } = readConf(file)
      if (configKind(text, file) !== 'list') continue
      const edit = withoutFerryEntry(text, file)
      if (!edit.changed) continue
      write(file, edit.text, mode)
      changed.push(file)
    } catch (err) {
      if (!isFerryError(err)) throw err
      errors.push(err)
    }
  }
  return { changed, errors }
}

function readConf (file: string): { text: string, mode: number } {
  try {
    return { text: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777 }
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot read ${file}: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
}

function write (file: string, content: string, mode: number): void {
  try {
    writeFileAtomic(file, content, mode)
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot write ${file}: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
}
