import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError } from '../errors'
import { killCgroup, removeCgroupTree, signalCgroup, waitEmpty } from './cgroup'
import { podAnnotations } from './cluster-file'
import { hasChainedPlugins, tearDownPodNetwork } from './cni/pod-network'
import { sleep } from './clock'
import { defaultPaths, knownLabNames } from './labs'
import { cgroupRootName, netnsPrefix, ownsName, PIN_PREFIX } from './names'
import { deleteNetns, listNetns } from './netns'
import { procStartTime } from './proc'
import { readState, writeState, type LabState } from './state'
import type { PlanPaths } from './topology'

// Tears a lab down completely, from its state file when there is one and by name
// otherwise, so that it also works after a crash or on a torn state file:
//   1. an `up` still running for this lab is stopped (it rolls back on SIGTERM);
//   2. the kubelets are stopped, and when the nodes chain CNI plugins, the pods are
//      stopped and given their CNI DEL while the agents still run;
//   3. every process in the lab's cgroup tree gets SIGTERM, then, after the grace
//      period, cgroup.kill; we wait until the tree is empty;
//   4. cgroups are removed deepest first;
//   5. network namespaces are deleted (their veths go with them);
//   6. /etc/netns/<netns> dirs, bpffs pin dirs and the state dir are removed.
// Finally everything is listed again, and anything left is an error.

export interface DownOptions {
  readonly paths?: PlanPaths
  /** Overrides the pods' grace period (ms) before SIGKILL. */
  readonly graceMs?: number
  /** The lab's state when the caller has it (a rolling-back `up`); read from disk otherwise. */
  readonly state?: LabState
  /** Also remove <labStateDir>/<name>.failed/ (logs of a failed `up`). Default true. */
  readonly removeFailedLogs?: boolean
}

export interface DownReport {
  readonly name: string
  /** False when there was nothing of this lab to remove. */
  readonly found: boolean
  readonly signalled: number
  readonly cgroups: boolean
  readonly netns: readonly string[]
  readonly etcDirs: readonly string[]
  readonly pinDirs: readonly string[]
  readonly stateDir: boolean
}

const KILL_WAIT_MS = 5000
const UP_EXIT_WAIT_MS = 15_000
const DEFAULT_GRACE_MS = 2000

export async function labDown (name: string, opts: DownOptions = {}): Promise<DownReport> {
  const fallback = opts.paths ?? defaultPaths()
  const stateDir = join(fallback.labStateDir, name)
  const state = opts.state ?? readState(join(stateDir, 'state.json'))
  const paths = state?.plan.paths ?? fallback
  const others = knownLabNames(paths).filter((n) => n !== name)

  if (state !== null) await stopRunningUp(state)
  if (state !== null && state.phase !== 'deleting') {
    state.phase = 'deleting'
    try { writeState(join(stateDir, 'state.json'), state) } catch { /* the state dir goes anyway */ }
  }

  const cgroupRoot = join(paths.cgroup2, cgroupRootName(name))
  let signalled = 0
  if (existsSync(cgroupRoot)) {
    if (state !== null) signalled += await stopPodsFirst(state, opts.graceMs ?? graceOf(state))
    signalled += signalCgroup(cgroupRoot, 'SIGTERM')
    const graceMs = opts.graceMs ?? graceOf(state)
    if (signalled > 0) await waitEmpty(cgroupRoot, graceMs)
    if (!await killCgroup(cgroupRoot, KILL_WAIT_MS)) {
      throw ferryError('FERRY_ERR_LAB', `processes of lab ${name} are still alive ${KILL_WAIT_MS} ms after cgroup.kill (${cgroupRoot})`)
    }
  }
  const hadCgroups = existsSync(cgroupRoot)
  removeCgroupTree(cgroupRoot)

  const planned = state === null ? [] : [state.plan.underlay.netns, ...state.plan.nodes.map((n) => n.netns), ...state.plan.pods.map((p) => p.netns)]
  const mine = (n: string): boolean => ownsName(n, name, others, netnsPrefix)
  const netns = unique([...planned.filter((n) => existsSync(join(paths.netnsDir, n))), ...listNetns(paths.netnsDir).filter(mine)])
  for (const n of netns) await deleteNetns(paths.netnsDir, n)

  const etcDirs = unique([...planned, ...listDir(paths.etcNetnsDir).filter(mine)]).map((n) => join(paths.etcNetnsDir, n)).filter((d) => existsSync(d))
  for (const d of etcDirs) rmSync(d, { recursive: true, force: true })

  const pinPrefix = (lab: string): string => `${PIN_PREFIX}${lab}-`
  const plannedPins = state === null ? [] : state.plan.nodes.map((n) => n.pinRoot)
  const pinDirs = unique([...plannedPins, ...listDir(paths.bpffs).filter((e) => ownsName(e, name, others, pinPrefix)).map((e) => join(paths.bpffs, e))]).filter((d) => existsSync(d))
  for (const d of pinDirs) rmSync(d, { recursive: true, force: true })

  const hadState = existsSync(stateDir)
  rmSync(stateDir, { recursive: true, force: true })
  const failed = failedLogsDir(paths, name)
  const hadFailedLogs = opts.removeFailedLogs !== false && existsSync(failed)
  if (hadFailedLogs) rmSync(failed, { recursive: true, force: true })

  const left = leftovers(name, paths, others)
  if (left.length > 0) throw ferryError('FERRY_ERR_LAB', `lab ${name} could not be removed completely; left:\n  ${left.join('\n  ')}`)
  return {
    name,
    found: hadCgroups || netns.length > 0 || etcDirs.length > 0 || pinDirs.length > 0 || hadState || hadFailedLogs,
    signalled,
    cgroups: hadCgroups,
    netns,
    etcDirs,
    pinDirs,
    stateDir: hadState
  }
}

/**
 * As a node shuts down: the kubelets first (so that none restarts a container meanwhile),
 * then the pods' containers and sandboxes, then — when a node's conflist chains plugins
 * after the lab's own — each pod's CNI DEL while the agents still run (a DEL that fails
 * is logged in the node's CNI log and stops nothing). Returns the processes signalled.
 */
async function stopPodsFirst (state: LabState, graceMs: number): Promise<number> {
  const plan = state.plan
  let signalled = 0
  for (const node of plan.nodes) {
    if (node.kubeletCgroup === undefined) continue // a lab from before kubelets
    signalled += signalCgroup(node.kubeletCgroup, 'SIGTERM')
    await killCgroup(node.kubeletCgroup, KILL_WAIT_MS)
  }
  if (!hasChainedPlugins(plan)) return signalled
  for (const node of plan.nodes) signalled += signalCgroup(node.podsCgroup, 'SIGTERM')
  await Promise.all(plan.nodes.map(async (node) => { if (!await waitEmpty(node.podsCgroup, graceMs)) await killCgroup(node.podsCgroup, KILL_WAIT_MS) }))
  await Promise.all(plan.pods.map(async (pod, i) => { await tearDownPodNetwork(plan, pod, podAnnotations(plan, state.spec.pods[i] ?? { annotations: {} }, pod)) }))
  return signalled
}

/** Where a failed `up` leaves its logs and state. */
export function failedLogsDir (paths: PlanPaths, name: string): string {
  return join(paths.labStateDir, `${name}.failed`)
}

/** What of the lab still exists on the host: cgroups, netns, /etc/netns dirs, pin dirs, state dir. */
export function leftovers (name: string, paths: PlanPaths = defaultPaths(), others: readonly string[] = knownLabNames(paths).filter((n) => n !== name)): string[] {
  const out: string[] = []
  const cg = join(paths.cgroup2, cgroupRootName(name))
  if (existsSync(cg)) out.push(`cgroup ${cg}`)
  const mine = (n: string): boolean => ownsName(n, name, others, netnsPrefix)
  for (const n of listNetns(paths.netnsDir).filter(mine)) out.push(`netns ${n}`)
  for (const n of listDir(paths.etcNetnsDir).filter(mine)) out.push(`dir ${join(paths.etcNetnsDir, n)}`)
  for (const e of listDir(paths.bpffs).filter((e) => ownsName(e, name, others, (lab) => `${PIN_PREFIX}${lab}-`))) out.push(`pin dir ${join(paths.bpffs, e)}`)
  if (existsSync(join(paths.labStateDir, name))) out.push(`state dir ${join(paths.labStateDir, name)}`)
  return out
}

/** A `ferry lab up` of this lab still running in another process is asked to stop (it rolls back on SIGTERM). */
async function stopRunningUp (state: LabState): Promise<void> {
  const pid = state.cliPid
  const same = (): boolean => procStartTime(pid) === state.cliStartTime
  if (state.phase !== 'creating' || pid === process.pid || !same()) return
  try { process.kill(pid, 'SIGTERM') } catch { return }
  for (let waited = 0; waited < UP_EXIT_WAIT_MS && same(); waited += 100) await sleep(100)
  if (same()) try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
}

function graceOf (state: LabState | null): number {
  if (state === null || state.plan.pods.length === 0) return DEFAULT_GRACE_MS
  return Math.max(...state.plan.pods.map((p) => p.graceSeconds)) * 1000
}

function listDir (dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

function unique<T> (xs: readonly T[]): T[] { return [...new Set(xs)] }
