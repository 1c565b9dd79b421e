import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../config/env'
import { ferryError } from '../errors'
import { CGROUP_PREFIX, checkLabName, LAB_NAME_RE } from './names'
import { readState, type LabState } from './state'
import type { PlanPaths } from './topology'

// Which labs exist on this host, and which one a command means.

/** The host paths a lab uses, from src/config/env.ts. */
export function defaultPaths (): PlanPaths {
  return {
    cgroup2: PATHS.cgroup2,
    netnsDir: PATHS.netnsDir,
    etcNetnsDir: '/etc/netns', // fixed by iproute2's `ip netns exec`
    bpffs: PATHS.bpffs,
    labStateDir: PATHS.labStateDir
  }
}

/** Labs with a state directory, sorted. */
export function listLabs (paths: PlanPaths = defaultPaths()): string[] {
  let entries: string[]
  try {
    entries = readdirSync(paths.labStateDir)
  } catch {
    return []
  }
  return entries.filter((e) => LAB_NAME_RE.test(e) && existsSync(join(paths.labStateDir, e))).sort()
}

/** Every lab name in evidence: state directories and lab cgroup roots (which outlive a lost state file). */
export function knownLabNames (paths: PlanPaths = defaultPaths()): string[] {
  const names = new Set(listLabs(paths))
  try {
    for (const e of readdirSync(paths.cgroup2)) {
      if (e.startsWith(CGROUP_PREFIX) && LAB_NAME_RE.test(e.slice(CGROUP_PREFIX.length))) names.add(e.slice(CGROUP_PREFIX.length))
    }
  } catch { /* no cgroup2 root: nothing to add */ }
  return [...names].sort()
}

/** The lab a command is about: the one named, or the only one up. */
export function resolveLabName (explicit: string | undefined, paths: PlanPaths = defaultPaths()): string {
  if (explicit !== undefined) return checkLabName(explicit)
  const labs = listLabs(paths)
  if (labs.length === 1) return labs[0]
  if (labs.length === 0) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', 'no lab is up (start one with `ferry lab up FILE…`)')
  throw ferryError('FERRY_ERR_INVALID_ARG', `several labs are up (${labs.join(', ')}): choose one with --lab NAME`)
}

export function loadLab (name: string, paths: PlanPaths = defaultPaths()): LabState {
  const state = readState(join(paths.labStateDir, name, 'state.json'))
  if (state === null) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', `no lab named "${name}" is up (no readable ${join(paths.labStateDir, name, 'state.json')})`)
  return state
}

export function requireRoot (what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw ferryError('FERRY_ERR_PRIVILEGE', `${what} needs root (network namespaces, cgroups, eBPF)`)
  }
}
