import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { ferryError } from '../errors'
import { sleep } from './clock'
import { procStartTime } from './proc'

// A lock for a read-modify-write of one of the lab's files by several processes (`up`,
// `apply`, `delete`, `restart` and one kubelet per node write cluster.json and
// state.json). The lock is `<file>.lock`, created with O_EXCL ('wx') and holding the
// owner's pid and start time; it is removed when the work is done. Writers still replace
// the file itself atomically (tmp + rename), so readers never need the lock.
//
// A lock whose owner is gone (killed in the middle) is stale: it is renamed aside, checked
// to be the very lock judged stale (another process may have broken it and taken a new
// one meanwhile; then it is put back), and removed. Holders keep the lock for
// milliseconds; a waiter gives up after `timeoutMs`.

export const LOCK_TIMEOUT_MS = 10_000
const RETRY_MS = 10

export interface LockOptions {
  readonly timeoutMs?: number
}

export async function withFileLock<T> (file: string, work: () => Promise<T> | T, opts: LockOptions = {}): Promise<T> {
  const lock = `${file}.lock`
  await acquire(lock, opts.timeoutMs ?? LOCK_TIMEOUT_MS)
  try {
    return await work()
  } finally {
    try { unlinkSync(lock) } catch { /* broken by another process as stale: nothing to release */ }
  }
}

async function acquire (lock: string, timeoutMs: number): Promise<void> {
  const me = `${process.pid} ${String(procStartTime(process.pid))}`
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let fd: number
    try {
      fd = openSync(lock, 'wx', 0o644)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ferryError('FERRY_ERR_LAB', `cannot create ${lock}: ${(e as Error).message}`, { cause: e })
      const owner = readOwner(lock)
      if (owner !== null && isStale(owner)) breakStale(lock, owner)
      else if (Date.now() >= deadline) throw ferryError('FERRY_ERR_LAB', `${lock} is held by process ${owner ?? '(unknown)'} for more than ${timeoutMs} ms`)
      else await sleep(RETRY_MS)
      continue
    }
    try {
      writeSync(fd, me)
    } finally {
      closeSync(fd)
    }
    return
  }
}

function readOwner (lock: string): string | null {
  try {
    const text = readFileSync(lock, 'utf8')
    return text === '' ? null : text // empty: its owner is still writing it
  } catch {
    return null
  }
}

function isStale (owner: string): boolean {
  const [pid, start] = owner.split(' ')
  const n = Number(pid)
  if (!Number.isInteger(n) || n <= 0) return true
  return String(procStartTime(n)) !== start
}

function breakStale (lock: string, owner: string): void {
  const aside = `${lock}.stale-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    renameSync(lock, aside)
  } catch {
    return // gone already: retry
  }
  try {
    if (readFileSync(aside, 'utf8') !== owner) {
      // Not the lock judged stale: another process took a fresh one in between. Put it back.
      try { linkSync(aside, lock) } catch { /* a third holder exists: theirs stands */ }
    }
  } finally {
    try { unlinkSync(aside) } catch { /* already gone */ }
  }
}
