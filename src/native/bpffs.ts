import { mkdirSync, statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import { ferryError } from '../errors'
import { PATHS } from '../config/env'
import { native } from './binding'

// Pins need bpffs. The agent mounts it at /sys/fs/bpf if a fresh node lacks it,
// then makes its pin root there.

const BPF_FS_MAGIC = 0xcafe4a11

export function isOnBpffs (path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC
  } catch {
    return false
  }
}

/** Makes `dir` (recursively) on bpffs, mounting bpffs at PATHS.bpffs first if needed. */
export function ensureBpffsDir (dir: string): void {
  if (dir.startsWith(`${PATHS.bpffs}/`) || dir === PATHS.bpffs) native().ensureBpffs(PATHS.bpffs)
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw ferryError('FERRY_ERR_BPFFS', `cannot create ${dir}: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
  if (!isOnBpffs(dir)) throw ferryError('FERRY_ERR_BPFFS', `${dir} is not on bpffs (its parent ${dirname(dir)} must be a bpffs mount)`)
}
