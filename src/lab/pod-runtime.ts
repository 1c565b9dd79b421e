import { existsSync, rmSync } from 'node:fs'
import { makeCgroup, killCgroup, removeCgroupTree, signalCgroup, waitEmpty } from './cgroup'
import type { Deadline } from './clock'
import { setUpPodNetwork, tearDownPodNetwork } from './cni/pod-network'
import { writePodEtc } from './hosts'
import { createPodNetwork } from './network'
import { deleteLinkIfPresent, deleteNetns } from './netns'
import { Watched } from './readiness'
import { spawnContainer, spawnSandbox } from './spawn'
import { etcNetnsDir, type LabPlan, type PlanPod } from './topology'

// The lab as the kubelet's container runtime: the one path by which `up` and `apply`
// make a pod, and `delete` (and a failed `apply`) remove one.
//
//   make     cgroup, /etc/netns/<netns>, netns + veth + addresses and routes (the lab's
//            primary CNI), with --kubernetes-api the sandbox process holding the netns;
//   start    (once the pod is in cluster.json) the node's chained CNI plugins' ADD,
//            retried until the deadline, then the containers, and not one before;
//   stop     the containers (SIGTERM, the pod's grace period, then cgroup.kill);
//   remove   CNI DEL (best effort), the sandbox, netns, /etc/netns dir and cgroups.
//
// Each step is journaled in state.json (through the caller's Recorder) before it runs,
// so that `down` after a crash knows what may exist.

export interface Recorder {
  /** Journals a step before it runs. */
  step: (what: string) => Promise<void>
  /** Records started processes (`pod/NS/NAME/CONTAINER`, `sandbox/NS/NAME`). */
  pids: (entries: Readonly<Record<string, number>>) => Promise<void>
}

const STOP_KILL_WAIT_MS = 5000

export async function makePodSandbox (plan: LabPlan, pod: PlanPod, hosts: string, rec: Recorder): Promise<void> {
  await rec.step(`pod ${pod.namespace}/${pod.name} ${pod.netns}`)
  makeCgroup(pod.cgroup)
  writePodEtc(plan, pod.netns, hosts)
  await createPodNetwork(plan, pod)
  if (pod.sandboxCgroup != null) {
    // As the runtime does: the sandbox process holds the netns before any container runs.
    makeCgroup(pod.sandboxCgroup)
    for (const c of pod.containers) if (c.cgroup != null) makeCgroup(c.cgroup)
    const child = spawnSandbox(plan, pod)
    if (child.pid !== undefined) await rec.pids({ [`sandbox/${pod.namespace}/${pod.name}`]: child.pid })
  }
}

export interface StartOptions {
  readonly deadline: Deadline
  readonly signal?: AbortSignal
  readonly say?: (line: string) => void
}

/** CNI ADD (retried until the deadline), then the containers; returns them, watched, by `NS/NAME/CONTAINER`. */
export async function startPod (plan: LabPlan, pod: PlanPod, annotations: Readonly<Record<string, string>>, rec: Recorder, opts: StartOptions): Promise<Map<string, Watched>> {
  await rec.step(`network ${pod.namespace}/${pod.name}`)
  await setUpPodNetwork(plan, pod, annotations, opts)
  const containers = new Map<string, Watched>()
  const pids: Record<string, number> = {}
  for (const c of pod.containers) {
    const key = `${pod.namespace}/${pod.name}/${c.name}`
    opts.signal?.throwIfAborted()
    await rec.step(`spawn ${key}`)
    const child = spawnContainer(pod, c)
    containers.set(key, new Watched(`container ${c.name} of pod ${pod.namespace}/${pod.name}`, c.log, child))
    if (child.pid !== undefined) pids[`pod/${key}`] = child.pid
  }
  await rec.pids(pids)
  return containers
}

/** Stops the pod's containers (not its sandbox): SIGTERM, up to `graceMs`, then cgroup.kill. */
export async function stopPodContainers (pod: PlanPod, graceMs: number): Promise<void> {
  const cgroups = pod.sandboxCgroup == null ? [pod.cgroup] : pod.containers.map((c) => c.cgroup ?? pod.cgroup)
  let signalled = 0
  for (const cg of cgroups) signalled += signalCgroup(cg, 'SIGTERM')
  if (signalled > 0) await Promise.all(cgroups.map(async (cg) => await waitEmpty(cg, graceMs)))
  for (const cg of cgroups) await killCgroup(cg, STOP_KILL_WAIT_MS)
}

/**
 * Everything of the pod but its containers (stop them first): CNI DEL, the sandbox
 * process, netns (and with it the veth), /etc/netns dir, cgroups. Returns the DEL
 * failure's message, if any: it is reported, it stops nothing.
 */
export async function removePodSandbox (plan: LabPlan, pod: PlanPod, annotations: Readonly<Record<string, string>>): Promise<string | null> {
  const delError = await tearDownPodNetwork(plan, pod, annotations)
  await killCgroup(pod.cgroup, STOP_KILL_WAIT_MS)
  // The node's end of the pod's veth now, not when the kernel gets to the namespace: a pod
  // added next may be given the same host number, and so the same link name.
  const node = plan.nodes.find((n) => n.name === pod.node)
  if (node !== undefined) await deleteLinkIfPresent(plan.paths.netnsDir, node.netns, pod.hostVeth)
  await deleteNetns(plan.paths.netnsDir, pod.netns)
  const etc = etcNetnsDir(plan.paths, pod.netns)
  if (existsSync(etc)) rmSync(etc, { recursive: true, force: true })
  removeCgroupTree(pod.cgroup)
  return delError
}
