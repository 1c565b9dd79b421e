import { ferryError, isFerryError } from '../errors'
import { Deadline } from './clock'
import { isItem, namespaceItem, podAnnotations, podItem, serviceItem, updateClusterFile } from './cluster-file'
import { hostsFileFor, rewriteHostsFiles } from './hosts'
import type { LabAdditions } from './manifest'
import { manifestError } from './manifest/issues'
import { probeWarnings } from './manifest/probes'
import type { LabPod } from './manifest/spec'
import { makePodSandbox, startPod, type Recorder } from './pod-runtime'
import { containerIssues } from './preflight'
import { Prober } from './probe'
import { waitForKubelets, waitForPods } from './readiness'
import { removePods } from './remove-objects'
import { updateState } from './state'
import { planPodAdditions, planServices, type PlanPod, type PlanService } from './topology'

// `ferry lab apply` of Pods, Services and Namespaces into a running lab (validated
// already against the lab by the manifest stage, `buildAdditions`):
//   1. under the state's lock: the lab is up, the names are still free (another apply
//      may have run meanwhile), the new objects are planned — pods on the next free
//      host numbers of their nodes (topology.ts, pure), Services their cluster IPs —
//      and the plan is written to state.json before anything is made;
//   2. the pods' sandboxes are made exactly as `up` makes them (src/lab/pod-runtime.ts);
//   3. cluster.json gets the Namespaces, Services and pods (Pending), and every pod's
//      hosts file is rewritten (new names, new endpoints);
//   4. each pod is started as `up` starts one — its node's chained CNI plugins (ADD
//      retried until the deadline), then its containers — and apply returns once they
//      run and their kubelet has published them Running.
// If the pods do not all start in time, they are removed again (as `delete` removes
// them, CNI DEL included) and the error says why; Namespaces and Services stay.

export interface AddOptions {
  readonly timeoutMs: number
  readonly signal?: AbortSignal
  readonly say?: (line: string) => void
  readonly newUid?: () => string
}

export interface AddResult {
  /** `pod/ns/name`, `service/ns/name`, `namespace/name`, as kubectl prints them. */
  readonly created: readonly string[]
}

export async function addObjects (stateFile: string, add: LabAdditions, opts: AddOptions): Promise<AddResult> {
  const say = opts.say ?? (() => {})
  const deadline = new Deadline(opts.timeoutMs)
  for (const w of probeWarnings(add.pods)) say(`warning: ${w}`)
  let pods: PlanPod[] = []
  let services: PlanService[] = []
  const state = await updateState(stateFile, (s) => {
    if (s.phase !== 'up') throw ferryError('FERRY_ERR_LAB', `lab ${s.name} is ${s.phase}, not up: nothing can be added to it`)
    const taken = [
      ...add.pods.filter((p) => s.spec.pods.some((x) => x.namespace === p.namespace && x.name === p.name)).map((p) => `Pod ${p.namespace}/${p.name}`),
      ...add.services.filter((v) => s.spec.services.some((x) => x.namespace === v.namespace && x.name === v.name)).map((v) => `Service ${v.namespace}/${v.name}`),
      ...add.namespaces.filter((n) => s.spec.namespaces.some((x) => x.name === n.name)).map((n) => `Namespace ${n.name}`)
    ]
    if (taken.length > 0) throw ferryError('FERRY_ERR_LAB_EXISTS', `lab ${s.name} got ${taken.join(', ')} meanwhile (another apply?)`)
    try {
      services = planServices(add.services, s.plan.services)
    } catch (e) {
      throw manifestError(add.services.map((v) => ({ file: v.origin.file, line: v.origin.line, object: `Service ${v.namespace}/${v.name}`, path: ['spec', 'clusterIPs'], message: (e as Error).message })))
    }
    pods = planPodAdditions(s.plan, add.pods, opts.newUid)
    const issues = containerIssues(add.pods, pods)
    if (issues.length > 0) throw manifestError(issues)
    s.spec = {
      ...s.spec,
      namespaces: [...s.spec.namespaces, ...add.namespaces],
      pods: [...s.spec.pods, ...add.pods],
      services: [...s.spec.services, ...add.services]
    }
    s.plan = { ...s.plan, pods: [...s.plan.pods, ...pods], services: [...s.plan.services, ...services] }
    for (const p of pods) s.journal.push({ at: new Date().toISOString(), step: `apply pod ${p.namespace}/${p.name} on ${p.node} (${p.ipv4}, ${p.netns})` })
  })
  const plan = state.plan
  const created = [
    ...add.namespaces.map((n) => `namespace/${n.name}`),
    ...add.services.map((v) => `service/${v.namespace}/${v.name}`),
    ...add.pods.map((p) => `pod/${p.namespace}/${p.name}`)
  ]
  const rec = stateRecorder(stateFile)
  const specOf = (p: PlanPod): LabPod => state.spec.pods[plan.pods.indexOf(p)]

  try {
    for (const pod of pods) await makePodSandbox(plan, pod, hostsFileFor(state.spec, plan, plan.pods.indexOf(pod)), rec)
    const now = new Date().toISOString()
    await updateClusterFile(plan.clusterFile, (list) => {
      for (const n of add.namespaces) if (!list.items.some((o) => isItem(o, 'Namespace', undefined, n.name))) list.items.push(namespaceItem(n))
      add.services.forEach((v, i) => { if (!list.items.some((o) => isItem(o, 'Service', v.namespace, v.name))) list.items.push(serviceItem(v, services[i])) })
      for (const p of pods) list.items.push(podItem(plan, specOf(p), p, now))
      return true
    })
    rewriteHostsFiles(state.spec, plan)
  } catch (err) {
    await removeQuietly(stateFile, pods)
    throw err
  }
  if (pods.length === 0) return { created }

  const prober = new Prober()
  try {
    const started = await Promise.all(pods.map(async (pod) => await startPod(plan, pod, podAnnotations(plan, specOf(pod), pod), rec, { deadline, signal: opts.signal, say })))
    await waitForPods(plan, pods, new Map(started.flatMap((m) => [...m])), prober, deadline, opts.signal)
    await waitForKubelets(plan, pods, new Map(), deadline, opts.signal)
  } catch (err) {
    say(`${pods.map((p) => `${p.namespace}/${p.name}`).join(', ')} did not start; removing ${pods.length === 1 ? 'it' : 'them'}`)
    await removeQuietly(stateFile, pods)
    if (err instanceof Error && err.name === 'AbortError') throw ferryError('FERRY_ERR_LAB', 'interrupted; the pods being added were removed')
    throw err
  } finally {
    prober.close()
  }
  return { created }
}

/** Journal and pids of a running lab, each written under the state's lock. */
export function stateRecorder (stateFile: string): Recorder {
  return {
    step: async (what) => { await updateState(stateFile, (s) => { s.journal.push({ at: new Date().toISOString(), step: what }) }) },
    pids: async (entries) => { if (Object.keys(entries).length > 0) await updateState(stateFile, (s) => { Object.assign(s.pids, entries) }) }
  }
}

async function removeQuietly (stateFile: string, pods: readonly PlanPod[]): Promise<void> {
  try {
    await removePods(stateFile, pods, { graceMs: 0 })
  } catch (e) {
    if (!isFerryError(e)) throw e
    // The pods stay in the lab's state: `ferry lab delete` or `down` removes them.
  }
}

