import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { ferryError } from '../errors'
import type { LabSpec } from './manifest/spec'
import { procStartTime } from './proc'
import type { LabPlan } from './topology'

// <labStateDir>/<name>/state.json: what a lab is and how far its making got. It is an
// intent log: the whole plan is written before the first resource is made, and each
// step is journaled *before* it runs, so that `down` after a crash knows everything
// that may exist. Writes are atomic (tmp + rename).

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
  readonly spec: LabSpec
  readonly plan: LabPlan
  /** Steps begun, oldest first: `netns fl-shop-node1`, `spawn shop/web/web`… */
  readonly journal: Array<{ readonly at: string, readonly step: string }>
  /** Pids by `node/NAME`, `pod/NS/NAME/CONTAINER` and `controller`. Informational: cleanup goes by cgroup. */
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

