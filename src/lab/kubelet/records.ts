import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ContainerState } from '../pod-status'
import type { LabPlan } from '../topology'

// What a node's kubelet knows of its containers' runs that the lab's state does not:
// the process of each container now (the lab records the first one; the kubelet
// starts the later ones), how often it was restarted, and how the last run ended.
// <stateDir>/kubelet/<node>.json, written by that kubelet alone (atomically), read by
// `ferry lab status`, and read back by a restarted kubelet.

export interface ContainerRecord {
  readonly pid: number
  /** The process's start time in clock ticks (/proc/PID/stat), to tell it from a later process with its pid. */
  readonly startTime: number | null
  /** When the run started, as the kubelet saw it (RFC 3339). */
  readonly startedAt: string
  readonly restartCount: number
  readonly lastState?: ContainerState | null
  /** Set once the run ended and was not restarted. */
  readonly ended?: ContainerState | null
}

export interface KubeletRecords {
  readonly version: 1
  /** By pod uid, then container name. */
  readonly pods: Record<string, Record<string, ContainerRecord>>
}

export function kubeletRecordsPath (plan: Pick<LabPlan, 'stateDir'>, node: string): string {
  return join(plan.stateDir, 'kubelet', `${node}.json`)
}

export function readKubeletRecords (path: string): KubeletRecords {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as KubeletRecords
    if (r.version === 1 && r.pods !== null && typeof r.pods === 'object') return r
  } catch { /* none yet, or torn: start afresh */ }
  return { version: 1, pods: {} }
}

export function writeKubeletRecords (path: string, records: KubeletRecords): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify(records) + '\n', { mode: 0o644 })
  renameSync(tmp, path)
}
