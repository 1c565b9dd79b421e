import { ferryError } from '../errors'
import { isItem, podAnnotations, updateClusterFile } from './cluster-file'
import { rewriteHostsFiles } from './hosts'
import { DEFAULT_NAMESPACE } from './manifest/spec'
import { removePodSandbox, stopPodContainers } from './pod-runtime'
import { readState, updateState } from './state'
import type { PlanPod } from './topology'

// `ferry lab delete` of Pods, Services and Namespaces, and the removal of pods an
// `apply` could not start. A pod goes as on a cluster:
//   1. cluster.json marks it (metadata.deletionTimestamp): its kubelet stops probing it;
//   2. its containers are stopped (SIGTERM, the pod's grace period, then cgroup.kill);
//   3. its node's chained CNI plugins get DEL (failures are reported, never block);
//   4. its sandbox, netns (and veth), /etc/netns dir and cgroups are removed;
//   5. it leaves cluster.json, then the lab's state.
// Each step tolerates what an earlier, interrupted removal already did, so running
// `delete` again (or `down`) finishes the job.

export interface ObjectRef {
  readonly kind: 'Pod' | 'Service' | 'Namespace'
  readonly namespace?: string
  readonly name: string
}

export interface RemoveOptions {
  /** Overrides each pod's grace period. */
  readonly graceMs?: number
  /** Lines for a person (CNI DEL failures). */
  readonly say?: (line: string) => void
}

export async function removePods (stateFile: string, pods: readonly PlanPod[], opts: RemoveOptions = {}): Promise<void> {
  if (pods.length === 0) return
  const say = opts.say ?? (() => {})
  const state = await updateState(stateFile, (s) => { for (const p of pods) s.journal.push({ at: new Date().toISOString(), step: `delete pod ${p.namespace}/${p.name} (${p.netns})` }) })
  const plan = state.plan
  const uids = new Set(pods.map((p) => p.uid))
  const now = new Date().toISOString()
  await updateClusterFile(plan.clusterFile, (list) => {
    let changed = false
    for (const o of list.items) {
      if (o.kind !== 'Pod' || !uids.has(o.metadata?.uid) || o.metadata.deletionTimestamp !== undefined) continue
      o.metadata.deletionTimestamp = now
      o.metadata.deletionGracePeriodSeconds = Math.round((opts.graceMs ?? pods[0].graceSeconds * 1000) / 1000)
      changed = true
    }
    return changed
  })
  await Promise.all(pods.map(async (pod) => {
    await stopPodContainers(pod, opts.graceMs ?? pod.graceSeconds * 1000)
    const i = plan.pods.findIndex((p) => p.uid === pod.uid)
    const annotations = i < 0 ? {} : podAnnotations(plan, state.spec.pods[i], pod)
    const delError = await removePodSandbox(plan, pod, annotations)
    if (delError !== null) say(`pod ${pod.namespace}/${pod.name}: ${delError} (removed anyway)`)
  }))
  await updateClusterFile(plan.clusterFile, (list) => {
    const before = list.items.length
    list.items = list.items.filter((o) => !(o.kind === 'Pod' && uids.has(o.metadata?.uid)))
    return list.items.length !== before
  })
  const after = await updateState(stateFile, (s) => {
    const keep = s.plan.pods.map((p) => !uids.has(p.uid))
    s.spec = { ...s.spec, pods: s.spec.pods.filter((_, i) => keep[i]) }
    s.plan = { ...s.plan, pods: s.plan.pods.filter((_, i) => keep[i]) }
    for (const p of pods) {
      for (const key of Object.keys(s.pids)) if (key.startsWith(`pod/${p.namespace}/${p.name}/`) || key === `sandbox/${p.namespace}/${p.name}`) delete s.pids[key]
    }
  })
  rewriteHostsFiles(after.spec, after.plan)
}

/** What a delete will remove, resolved against the lab (nothing is removed yet). */
export interface Deletion {
  readonly pods: readonly PlanPod[]
  readonly services: readonly ObjectRef[]
  readonly namespaces: readonly ObjectRef[]
}

/** Resolves the named objects against the lab's state; throws (naming them) if any is missing, or a Namespace would not be empty. */
export function resolveDeletion (stateFile: string, refs: readonly ObjectRef[]): Deletion {
  const state = readState(stateFile)
  if (state === null) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', `no readable lab state at ${stateFile}`)
  const missing: string[] = []
  const pods: PlanPod[] = []
  for (const r of refs.filter((x) => x.kind === 'Pod')) {
    const p = state.plan.pods.find((x) => x.namespace === r.namespace && x.name === r.name)
    if (p === undefined) missing.push(`Pod ${r.namespace as string}/${r.name}`)
    else pods.push(p)
  }
  const services = refs.filter((r) => r.kind === 'Service')
  for (const r of services) if (!state.spec.services.some((s) => s.namespace === r.namespace && s.name === r.name)) missing.push(`Service ${r.namespace as string}/${r.name}`)
  const namespaces = refs.filter((r) => r.kind === 'Namespace')
  for (const r of namespaces) {
    const ns = state.spec.namespaces.find((n) => n.name === r.name)
    if (ns === undefined) { missing.push(`Namespace ${r.name}`); continue }
    if (!ns.declared || ns.name === DEFAULT_NAMESPACE) throw ferryError('FERRY_ERR_INVALID_ARG', `the ${DEFAULT_NAMESPACE} namespace cannot be deleted`)
    const leftPods = state.spec.pods.filter((p) => p.namespace === r.name && !pods.some((x) => x.namespace === p.namespace && x.name === p.name))
    const leftServices = state.spec.services.filter((s) => s.namespace === r.name && !services.some((x) => x.namespace === s.namespace && x.name === s.name))
    if (leftPods.length + leftServices.length > 0) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `Namespace ${r.name} still holds ${[...leftPods.map((p) => `Pod ${p.name}`), ...leftServices.map((s) => `Service ${s.name}`)].join(', ')}: delete them too (the lab does not cascade)`)
    }
  }
  if (missing.length > 0) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no ${missing.join(', ')}`)
  if (state.phase !== 'up') throw ferryError('FERRY_ERR_LAB', `lab ${state.name} is ${state.phase}, not up`)
  return { pods, services, namespaces }
}

/** Removes what resolveDeletion found: pods first, then Services, then Namespaces. */
export async function deleteObjects (stateFile: string, d: Deletion, opts: RemoveOptions = {}): Promise<{ deleted: string[] }> {
  const { pods, services, namespaces } = d
  await removePods(stateFile, pods, opts)
  if (services.length + namespaces.length > 0) {
    const drop = (o: Record<string, any>): boolean =>
      services.some((r) => isItem(o, 'Service', r.namespace, r.name)) || namespaces.some((r) => isItem(o, 'Namespace', undefined, r.name))
    const after = await updateState(stateFile, (s) => {
      const keep = s.spec.services.map((v) => !services.some((r) => r.namespace === v.namespace && r.name === v.name))
      s.spec = {
        ...s.spec,
        services: s.spec.services.filter((_, i) => keep[i]),
        namespaces: s.spec.namespaces.filter((n) => !namespaces.some((r) => r.name === n.name))
      }
      s.plan = { ...s.plan, services: s.plan.services.filter((_, i) => keep[i]) }
      s.journal.push({ at: new Date().toISOString(), step: `delete ${[...services, ...namespaces].map((r) => `${r.kind} ${r.namespace === undefined ? '' : `${r.namespace}/`}${r.name}`).join(', ')}` })
    })
    await updateClusterFile(after.plan.clusterFile, (list) => {
      const before = list.items.length
      list.items = list.items.filter((o) => !drop(o))
      return list.items.length !== before
    })
    rewriteHostsFiles(after.spec, after.plan)
  }
  return {
    deleted: [
      ...pods.map((p) => `pod/${p.namespace}/${p.name}`),
      ...services.map((r) => `service/${r.namespace as string}/${r.name}`),
      ...namespaces.map((r) => `namespace/${r.name}`)
    ]
  }
}
