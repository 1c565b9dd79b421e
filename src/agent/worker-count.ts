import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { ferryError } from '../errors'

// How many data-path workers an agent runs when --workers is not given: the CPUs its
// cgroup may use (cgroup v2 cpu.max quota / period, rounded up; the scheduler's
// affinity, which cpuset.cpus narrows, through os.availableParallelism()), capped at
// DEFAULT_WORKERS_CAP. A worker per usable CPU and no more: a second worker on one
// CPU only adds context switches.

/** The default never exceeds this (more is allowed with --workers, up to MAX_WORKERS). */
export const DEFAULT_WORKERS_CAP = 4
/** The most workers an agent runs: the eBPF selection maps have a slot for each (bpf/ferry_shared.h FERRY_MAX_WORKERS, checked by test/capture/map-layout.test.ts). */
export const MAX_WORKERS = 8

/** The CPUs the quota of this process's cgroup allows (null: no quota). */
export function cpuQuota (proc = '/proc/self/cgroup', root = '/sys/fs/cgroup'): number | null {
  let path: string | undefined
  try {
    path = readFileSync(proc, 'utf8').split('\n').find((l) => l.startsWith('0::'))?.slice(3)
  } catch {
    return null
  }
  if (path === undefined) return null
  // The tightest quota on the way from this cgroup to the root applies.
  let best: number | null = null
  for (let dir = path; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/')))) {
    try {
      const [quota, period] = readFileSync(join(root, dir, 'cpu.max'), 'utf8').trim().split(/\s+/)
      const q = Number(quota)
      const p = Number(period)
      if (quota !== 'max' && q > 0 && p > 0) best = Math.min(best ?? Infinity, Math.ceil(q / p))
    } catch {}
    if (dir === '' || dir === '/') break
  }
  return best
}

export function defaultWorkers (cpus = availableParallelism(), quota = cpuQuota()): number {
  return Math.max(1, Math.min(DEFAULT_WORKERS_CAP, cpus, quota ?? Infinity))
}

/**
 * A worker count given as text (`ferry agent --workers`, `ferry lab up --workers`,
 * FERRY_LAB_WORKERS): an integer from 1 to MAX_WORKERS, or FERRY_ERR_INVALID_ARG naming
 * `what` and the value.
 */
export function parseWorkerCount (value: string, what: string): number {
  const n = /^[0-9]{1,3}$/.test(value) ? Number(value) : NaN
  if (!(n >= 1 && n <= MAX_WORKERS)) throw ferryError('FERRY_ERR_INVALID_ARG', `${what} "${value}" is invalid: expected an integer from 1 to ${MAX_WORKERS}`)
  return n
}
