import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError } from '../errors'
import { sleep } from './clock'

// cgroup v2 directories: made with mkdir, emptied with cgroup.kill (which kills a whole
// subtree at once, forked children included, with no pid races), removed deepest first.
// The lab never enables controllers, so processes may live in any directory.

export function makeCgroup (path: string): void {
  try {
    mkdirSync(path, { recursive: true })
  } catch (e) {
    throw ferryError('FERRY_ERR_CGROUP', `cannot create cgroup ${path}: ${(e as Error).message}`, { cause: e, errno: (e as NodeJS.ErrnoException).code })
  }
}

/** Pids in this cgroup and every cgroup below it. */
export function cgroupPids (path: string): number[] {
  const pids: number[] = []
  for (const dir of cgroupTree(path)) {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line !== '') pids.push(Number(line))
    } catch { /* removed meanwhile */ }
  }
  return pids
}

export function isPopulated (path: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(path, 'cgroup.events'), 'utf8'))
  } catch {
    return false
  }
}

/** Sends `signal` to every process of the subtree; returns how many were signalled. */
export function signalCgroup (path: string, signal: NodeJS.Signals): number {
  let n = 0
  for (const pid of cgroupPids(path)) {
    try {
      process.kill(pid, signal)
      n++
    } catch { /* already gone */ }
  }
  return n
}

/** SIGKILLs the whole subtree and waits (bounded) until it is empty. Returns false if it did not empty in time. */
export async function killCgroup (path: string, timeoutMs: number): Promise<boolean> {
  if (!existsSync(path)) return true
  try {
    writeFileSync(join(path, 'cgroup.kill'), '1')
  } catch (e) {
    // Kernels before 5.14 have no cgroup.kill: fall back to signalling every pid.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    signalCgroup(path, 'SIGKILL')
  }
  return await waitEmpty(path, timeoutMs)
}

export async function waitEmpty (path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isPopulated(path)) {
    if (Date.now() >= deadline) return false
    await sleep(20)
  }
  return true
}

/** Removes the directory and all below it, deepest first. Missing is fine. */
export function removeCgroupTree (path: string): void {
  if (!existsSync(path)) return
  for (const dir of cgroupTree(path).reverse()) {
    try {
      rmdirSync(dir)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') continue
      throw ferryError('FERRY_ERR_CGROUP', `cannot remove cgroup ${dir}: ${(e as Error).message}`, { cause: e, errno: code })
    }
  }
}

/** This directory and its descendants, parents before children. */
export function cgroupTree (path: string): string[] {
  const out: string[] = []
  const visit = (dir: string, depth: number): void => {
    if (depth > 32) return // cgroup.max.depth guard; lab trees are 6 deep
    out.push(dir)
    let entries
    try {
      entries = readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) if (e.isDirectory()) visit(join(dir, e.name), depth + 1)
  }
  if (existsSync(path)) visit(path, 0)
  return out
}
