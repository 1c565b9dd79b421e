import { existsSync, statSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Logger } from '../../telemetry/logger'
import { ChangeTrigger, fileFingerprint } from '../../util/change-trigger'
import { type ClusterList, readClusterFile, updateClusterFile } from '../cluster-file'
import { podNetworkReady } from '../cni/pod-network'
import type { LabPod } from '../manifest/spec'
import { podStatus, type ObservedPod } from '../pod-status'
import { readState, type LabState } from '../state'
import type { LabPlan, PlanNode, PlanPod } from '../topology'
import { ferryError } from '../../errors'
import { ContainerWorker } from './container-worker'
import type { Timers } from './probe-worker'
import { kubeletRecordsPath, readKubeletRecords, writeKubeletRecords, type ContainerRecord, type KubeletRecords } from './records'

// A node's kubelet, as far as the lab plays one (`ferry lab kubelet`, one process per
// node, in <node cgroup>/kubelet and the node's network namespace). Every SYNC_MS, when
// state.json or cluster.json changes, and soon after a probe's published result
// changes, it
//   - reads the pods bound to its node from cluster.json (the API) and how to run them
//     from state.json (the runtime's records): pods added later are picked up, pods
//     deleted (gone, or marked with a deletionTimestamp) are dropped;
//   - watches each container's process and runs its probes (container-worker.ts);
//   - publishes each pod's status (src/lab/pod-status.ts) into cluster.json — only
//     when it changed, as a read-modify-write under the file's lock that bumps the
//     List's resourceVersion.
// It starts no pod: the lab's runtime (`up`, `apply`) does, with the CNI calls first.

export const SYNC_MS = 500
const CHANGE_DEBOUNCE_MS = 20

export interface KubeletOptions {
  readonly stateFile: string
  readonly node: string
  readonly log: Logger
  readonly syncMs?: number
  readonly timers?: Timers
}

interface PodWorker {
  readonly pod: PlanPod
  readonly containers: ContainerWorker[]
}

export class Kubelet {
  private readonly pods = new Map<string, PodWorker>()
  private readonly records: KubeletRecords
  private readonly recordsPath: string
  private recordsDirty = false
  private timer: NodeJS.Timeout | null = null
  private readonly triggers: ChangeTrigger[] = []
  private soon: NodeJS.Timeout | null = null
  private syncing: Promise<void> | null = null
  private again = false
  private closed = false
  private lastError = ''
  // The two files are parsed again only when they were replaced (each sync still looks at every container's process).
  private readonly state: Parsed<LabState | null>
  private readonly cluster: Parsed<ClusterList>

  private constructor (private readonly opts: KubeletOptions, private readonly node: PlanNode, private plan: LabPlan) {
    this.recordsPath = kubeletRecordsPath(plan, node.name)
    this.state = new Parsed(opts.stateFile)
    this.cluster = new Parsed(plan.clusterFile)
    this.records = readKubeletRecords(this.recordsPath)
  }

  static async start (opts: KubeletOptions): Promise<Kubelet> {
    const state = readState(opts.stateFile)
    if (state === null) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', `lab kubelet: no readable lab state at ${opts.stateFile}`)
    const node = state.plan.nodes.find((n) => n.name === opts.node)
    if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab kubelet: lab ${state.name} has no node "${opts.node}"`)
    const k = new Kubelet(opts, node, state.plan)
    await k.sync()
    k.timer = setInterval(() => { void k.sync() }, opts.syncMs ?? SYNC_MS)
    // A change of the lab's state (pods added, containers started) or of cluster.json
    // (pods bound, deleted) is acted on at once, not at the next period.
    for (const file of [opts.stateFile, state.plan.clusterFile]) {
      const trigger = new ChangeTrigger({ dir: dirname(file), name: basename(file), fingerprint: async () => await fileFingerprint(file), reload: async () => { await k.sync() }, log: opts.log, what: basename(file) })
      trigger.start()
      k.triggers.push(trigger)
    }
    return k
  }

  /** One pass; concurrent calls coalesce into one more pass. */
  async sync (): Promise<void> {
    if (this.closed) return
    if (this.syncing !== null) { this.again = true; return await this.syncing }
    this.syncing = (async () => {
      do {
        this.again = false
        try {
          await this.syncOnce()
          this.lastError = ''
        } catch (err) {
          const message = (err as Error).message
          if (message !== this.lastError) this.opts.log.error({ err: message }, 'sync failed; retrying')
          this.lastError = message
        }
      } while (this.again && !this.closed)
    })()
    try {
      await this.syncing
    } finally {
      this.syncing = null
    }
  }

  async close (): Promise<void> {
    this.closed = true
    for (const t of this.triggers) t.close()
    if (this.timer !== null) clearInterval(this.timer)
    if (this.soon !== null) clearTimeout(this.soon)
    await this.syncing
    for (const p of this.pods.values()) for (const c of p.containers) c.stop()
    this.pods.clear()
    this.saveRecords()
  }

  private changed (): void {
    if (this.closed || this.soon !== null) return
    this.soon = setTimeout(() => { this.soon = null; void this.sync() }, CHANGE_DEBOUNCE_MS)
  }

  private async syncOnce (): Promise<void> {
    const state = this.state.read(() => readState(this.opts.stateFile))
    if (state === null) throw ferryError('FERRY_ERR_LAB', `cannot read the lab's state ${this.opts.stateFile}`)
    this.plan = state.plan
    // `up` starts the kubelets before it writes cluster.json: no pods yet.
    if (!existsSync(this.plan.clusterFile)) return
    const list = this.cluster.read(() => readClusterFile(this.plan.clusterFile))
    const bound = this.boundPods(state, list)

    for (const [uid, worker] of this.pods) {
      if (bound.has(uid)) continue
      for (const c of worker.containers) c.stop()
      this.pods.delete(uid)
      delete this.records.pods[uid]
      this.recordsDirty = true
      this.opts.log.info({ pod: `${worker.pod.namespace}/${worker.pod.name}`, event: 'removed' }, 'pod left the node')
    }
    const observed = new Map<string, ObservedPod>()
    for (const [uid, { pod, spec }] of bound) {
      const worker = this.pods.get(uid) ?? this.addPod(pod, spec)
      worker.containers.forEach((c, i) => { c.observe(state.pids[`pod/${pod.namespace}/${pod.name}/${pod.containers[i].name}`]) })
      observed.set(uid, {
        sandboxReady: podNetworkReady(this.plan, pod),
        containers: worker.containers.map((c) => c.observed()),
        startTime: '',
        podIPs: [pod.ipv4, pod.ipv6],
        hostIPs: [this.node.ipv4, this.node.ipv6]
      })
    }
    this.saveRecords()

    const now = new Date().toISOString()
    const stale = list.items.filter((o) => o.kind === 'Pod' && observed.has(o.metadata.uid) && !sameStatus(o, observed.get(o.metadata.uid) as ObservedPod, now))
    if (stale.length === 0) return
    const written: string[] = []
    const rv = await updateClusterFile(this.plan.clusterFile, (fresh) => {
      written.length = 0
      for (const o of fresh.items) {
        const obs = o.kind === 'Pod' && o.metadata?.deletionTimestamp === undefined ? observed.get(o.metadata?.uid) : undefined
        if (obs === undefined || sameStatus(o, obs, now)) continue
        o.status = statusOf(o, obs, now)
        written.push(`${o.metadata.namespace as string}/${o.metadata.name as string}`)
      }
      return written.length > 0
    })
    if (written.length > 0) this.opts.log.info({ pods: written, resourceVersion: rv }, 'status published')
  }

  /** Pods of cluster.json bound to this node, not being deleted, that the runtime has records of; by uid. */
  private boundPods (state: LabState, list: ClusterList): Map<string, { pod: PlanPod, spec: LabPod }> {
    const out = new Map<string, { pod: PlanPod, spec: LabPod }>()
    for (const o of list.items) {
      if (o.kind !== 'Pod' || o.spec?.nodeName !== this.node.name || o.metadata?.deletionTimestamp !== undefined) continue
      const i = state.plan.pods.findIndex((p) => p.uid === o.metadata?.uid)
      if (i >= 0) out.set(state.plan.pods[i].uid, { pod: state.plan.pods[i], spec: state.spec.pods[i] })
    }
    return out
  }

  private addPod (pod: PlanPod, spec: LabPod): PodWorker {
    const recs = this.records.pods[pod.uid] ?? {}
    this.records.pods[pod.uid] = recs
    const containers = pod.containers.map((c, i) => new ContainerWorker({
      log: this.opts.log,
      timers: this.opts.timers,
      changed: () => { this.changed() },
      recorded: (r: ContainerRecord) => { recs[c.name] = r; this.recordsDirty = true }
    }, pod, spec, c, spec.containers[i], recs[c.name] ?? null))
    const worker = { pod, containers }
    this.pods.set(pod.uid, worker)
    this.opts.log.info({ pod: `${pod.namespace}/${pod.name}`, uid: pod.uid, event: 'added' }, 'pod bound to the node')
    return worker
  }

  private saveRecords (): void {
    if (!this.recordsDirty) return
    this.recordsDirty = false
    try {
      writeKubeletRecords(this.recordsPath, this.records)
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, path: this.recordsPath }, 'cannot write the kubelet\'s records')
    }
  }
}

/** The status to publish: the observation, with the start time the pod was accepted with. */
function statusOf (item: Record<string, any>, observed: ObservedPod, now: string): object {
  return podStatus({ ...observed, startTime: item.status?.startTime ?? now }, item.status, now)
}

function sameStatus (item: Record<string, any>, observed: ObservedPod, now: string): boolean {
  return JSON.stringify(statusOf(item, observed, now)) === JSON.stringify(item.status)
}

/** A file's parsed content, parsed again only when the file changed (inode, size, mtime). */
class Parsed<T> {
  private key = ''
  private value: T | undefined

  constructor (private readonly path: string) {}

  read (parse: () => T): T {
    let key: string
    try {
      const st = statSync(this.path)
      key = `${st.ino}:${st.size}:${st.mtimeMs}`
    } catch {
      key = 'missing'
    }
    if (key !== this.key || this.value === undefined) {
      this.value = parse()
      this.key = key
    }
    return this.value
  }
}
