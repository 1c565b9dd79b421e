import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { createRootCa, loadRootCa, type RootCa } from './root-ca'

// The CA's data directory: where the root key and certificate live between runs (a
// Kubernetes Secret later; the file names match the keys such a Secret would have).
//
//   <data-dir>/            0700
//     root-key.pem         0600  PKCS#8, EC P-256: never readable by anyone else
//     root-cert.pem        0644  public: agents and operators may read it
//
// First start: both are made and written atomically (temporary file, then rename; the key
// first). Later starts: both are read and checked to belong together. A directory with
// only one of the two is an error, never silently "repaired" with a new root: every
// certificate issued under the old root would stop verifying.

export const CA_FILES = Object.freeze({ key: 'root-key.pem', cert: 'root-cert.pem' })
const DIR_MODE = 0o700
const KEY_MODE = 0o600
const CERT_MODE = 0o644

export interface CaStoreResult {
  readonly root: RootCa
  /** True when this call made the root (first start in this directory). */
  readonly created: boolean
  readonly certPath: string
}

export async function loadOrCreateRoot (dataDir: string, opts: { trustDomain: string, now: number, log: Logger }): Promise<CaStoreResult> {
  await ensureDir(dataDir)
  const keyPath = join(dataDir, CA_FILES.key)
  const certPath = join(dataDir, CA_FILES.cert)
  const [keyPem, certPem] = await Promise.all([readIfExists(keyPath), readIfExists(certPath)])
  if (keyPem !== null && certPem !== null) {
    await checkKeyMode(keyPath)
    const root = await loadRootCa(keyPem, certPem, `${keyPath}, ${certPath}`)
    if (root.notAfter <= opts.now) throw ferryError('FERRY_ERR_CA_STORE', `${certPath}: the root certificate expired on ${new Date(root.notAfter).toISOString()}`)
    opts.log.info({ dataDir, notAfter: new Date(root.notAfter).toISOString() }, 'loaded the CA root')
    return { root, created: false, certPath }
  }
  if (keyPem !== null || certPem !== null) {
    const [have, missing] = keyPem !== null ? [keyPath, certPath] : [certPath, keyPath]
    throw ferryError('FERRY_ERR_CA_STORE', `${dataDir}: ${have} exists but ${missing} does not; move the directory aside to start a new root (certificates of the old one will stop verifying)`)
  }
  const created = await createRootCa(opts.trustDomain, opts.now)
  await writeAtomic(keyPath, created.keyPem, KEY_MODE)
  await writeAtomic(certPath, created.certPem, CERT_MODE)
  opts.log.info({ dataDir, notAfter: new Date(created.notAfter).toISOString() }, 'created a new CA root')
  const { keyPem: _secret, ...root } = created
  return { root: Object.freeze(root), created: true, certPath }
}

async function ensureDir (dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE })
    const s = await stat(dir)
    if (!s.isDirectory()) throw new Error('not a directory')
  } catch (err) {
    throw ferryError('FERRY_ERR_CA_STORE', `${dir}: cannot use as the CA data directory: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
}

async function readIfExists (path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw ferryError('FERRY_ERR_CA_STORE', `${path}: cannot read: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
}

async function checkKeyMode (path: string): Promise<void> {
  const mode = (await stat(path)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw ferryError('FERRY_ERR_CA_STORE', `${path}: the root key is readable by others (mode ${mode.toString(8)}); chmod 600 it`)
  }
}

async function writeAtomic (path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  try {
    await writeFile(tmp, text, { mode, flag: 'wx' })
    await chmod(tmp, mode) // the umask may have narrowed the cert's mode
    await rename(tmp, path)
  } catch (err) {
    throw ferryError('FERRY_ERR_CA_STORE', `${path}: cannot write: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
}
