import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { ferryError } from '../errors'
import { withFileLock } from './file-lock'
import type { LabSpec } from './manifest/spec'
import { procStartTime } from './proc'
import type { LabPlan } from './topology'

// <labStateDir>/<name>/state.json: what a lab is and how far its making got. It is an
// intent log: the whole plan is written before the first resource is made, and each
// step is journaled *before* it runs, so that `down` after a crash knows everything
// that may exist. Writes are atomic (tmp + rename). `up` is the only writer while it
// makes the lab; afterwards `apply`, `delete`, `restart`, `stop` and `start` change it
// with updateState(), a read-modify-write under the file's lock (src/lab/file-lock.ts).
// Pods added by `apply` join spec.pods and plan.pods (same index in both) before their
// first resource is made, and leave them once `delete` removed their last one.

export const STATE_VERSION = 1

export type LabPhase = 'creating' | 'up' | 'failed' | 'deleting'

export interface LabState {
  readonly version: number
  readonly name: string
  phase: LabPhase
  readonly createdAt: string
  /** The `ferry lab up` process; a 'creating' lab whose CLI is gone was interrupted. */
  readonly cliPid: number
  /** Its start time (/proc/PID/stat), to tell it from a later process with the same pid. */
  readonly cliStartTime: number | null
  /** Resource version of cluster.json (0 before it is written). */
  generation: number
  spec: LabSpec
  plan: LabPlan
  /** Steps begun, oldest first: `netns fl-shop-node1`, `spawn shop/web/web`… */
  readonly journal: Array<{ readonly at: string, readonly step: string }>
  /**
   * Pids by `node/NAME` (agents), `kubelet/NAME`, `pod/NS/NAME/CONTAINER` (as the lab
   * started them; a container the kubelet restarted is in the kubelet's records),
   * `sandbox/NS/NAME` and `controller`. Informational: cleanup goes by cgroup.
   */
  readonly pids: Record<string, number>
  /** Why the last `up` failed, when phase is 'failed'. */
  error?: string
}

export function newState (spec: LabSpec, plan: LabPlan, now: Date = new Date()): LabState {
  return {
    version: STATE_VERSION,
    name: plan.name,
    phase: 'creating',
    createdAt: now.toISOString(),
    cliPid: process.pid,
    cliStartTime: procStartTime(process.pid),
    generation: 0,
    spec,
    plan,
    journal: [],
    pids: {}
  }
}

export function writeState (path: string, state: LabState): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify(state, null, 1) + '\n', { mode: 0o644 })
  renameSync(tmp, path)
}

/**
 * Read-modify-write of a running lab's state by a process other than its `up`: under the
 * lock, the state is read afresh, `change` edits it, and it is written back. Returns it.
 */
export async function updateState (path: string, change: (state: LabState) => void): Promise<LabState> {
  return await withFileLock(path, () => {
    const state = readState(path)
    if (state === null) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', `no readable lab state at ${path} (the lab was removed?)`)
    change(state)
    writeState(path, state)
    return state
  })
}

/** Journals a step, persisting it before the caller performs it. */
export function journal (path: string, state: LabState, step: string): void {
  state.journal.push({ at: new Date().toISOString(), step })
  writeState(path, state)
}

/** The state of a lab, or null when it has no (readable) state file. */
export function readState (path: string): LabState | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw ferryError('FERRY_ERR_LAB', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  try {
    const s = JSON.parse(text) as LabState
    if (s.version !== STATE_VERSION || s.plan === undefined || s.spec === undefined) return null
    return s
  } catch {
    return null // torn or foreign: `down` falls back to sweeping by name
  }
}

/** Makes the lab's state directory; fails if it exists (another lab of that name, or leftovers). */
export function claimStateDir (dir: string): void {
  mkdirSync(dirname(dir), { recursive: true })
  try {
    mkdirSync(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw ferryError('FERRY_ERR_LAB_EXISTS', `a lab named "${basename(dir)}" exists (${dir}); run \`ferry lab down ${basename(dir)}\` first`)
    }
    throw ferryError('FERRY_ERR_LAB', `cannot create ${dir}: ${(e as Error).message}`, { cause: e })
  }
}

