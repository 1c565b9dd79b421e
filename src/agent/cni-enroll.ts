import { join } from 'node:path'
import type { CniAnswer, CniHandler } from '../cni/server'
import { type CniPodRequest, podName } from '../cni/protocol'
import { meshDecision } from '../discovery/mesh-policy'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import type { PodEnroller } from './enroller'

// What the agent does with the ferry-cni plugin's requests (src/cni/server.ts carries
// them). The plugin asks only for pods its state file calls meshed; the agent decides
// again, with its own rule and its current snapshot:
//
//   ADD    wait (until the request's deadline) for discovery to show the pod — by UID when
//          the runtime passed K8S_POD_UID, else by namespace/name — then: a pod of another
//          node or already finished is refused; a pod that is not meshed is answered
//          `not-meshed` (it starts at once); a meshed pod is enrolled by the enroller,
//          with the ADD's netns and IPs as hints, and answered once it is — or refused
//          with the enroller's reason (an invalid annotation, port 15001 taken, …).
//   DEL    forget the hints; unenrolling follows discovery as for every pod.
//   CHECK  the pod is enrolled (or not meshed), from the current snapshot.

export interface CniEnrollmentDeps {
  readonly node: string
  readonly enroller: Pick<PodEnroller, 'enrollFromCni' | 'forgetHints' | 'enrolledPods' | 'status'>
  /** The discovery source's current snapshot. */
  readonly current: () => ClusterSnapshot | null
  /** The host's procfs as the agent sees it: a CNI_NETNS of /proc/PID/ns/net is read there. */
  readonly hostProc?: string
  readonly log: Logger
}

interface PodWaiter { readonly request: CniPodRequest, readonly found: (pod: Pod) => void, readonly fail: (err: Error) => void }

export class CniEnrollment implements CniHandler {
  private readonly waiting = new Set<PodWaiter>()
  private closed = false

  constructor (private readonly deps: CniEnrollmentDeps) {}

  /** Every new snapshot: the ADDs waiting for their pod look again. */
  onSnapshot (snapshot: ClusterSnapshot): void {
    for (const w of [...this.waiting]) {
      const pod = findPod(snapshot, w.request)
      if (pod !== null) w.found(pod)
    }
  }

  close (): void {
    this.closed = true
    for (const w of [...this.waiting]) w.fail(ferryError('FERRY_ERR_CNI', 'the agent is shutting down'))
  }

  async handle (req: CniPodRequest, signal: AbortSignal): Promise<CniAnswer> {
    if (this.closed) throw ferryError('FERRY_ERR_CNI', 'the agent is shutting down')
    if (req.command === 'del') {
      const pod = findPod(this.deps.current(), req)
      if (pod !== null) this.deps.enroller.forgetHints(pod.uid)
      return { result: 'forgotten' }
    }
    if (req.command === 'check') return this.check(req)
    const pod = await this.waitForPod(req, signal)
    const snapshot = this.deps.current() as ClusterSnapshot
    if (pod.namespace !== req.namespace || pod.name !== req.name) throw ferryError('FERRY_ERR_CNI', `uid ${req.uid ?? ''} is pod ${pod.namespace}/${pod.name}, not ${podName(req)}`)
    if (pod.nodeName !== this.deps.node) throw ferryError('FERRY_ERR_CNI', `pod ${podName(req)} is scheduled on node ${pod.nodeName ?? '(none)'}, not on this agent's node ${this.deps.node}`)
    if (pod.phase === 'Succeeded' || pod.phase === 'Failed') throw ferryError('FERRY_ERR_CNI', `pod ${podName(req)} has finished (phase ${pod.phase})`)
    const decision = meshDecision(pod, snapshot.namespaces.find((n) => n.name === pod.namespace))
    if (!decision.meshed || pod.hostNetwork) return { result: 'not-meshed' }
    if ('error' in decision) throw ferryError('FERRY_ERR_ENROLL', decision.error.message, { cause: decision.error })
    await this.deps.enroller.enrollFromCni(pod.uid, { netnsPath: this.hostPath(req.netns), podIPs: req.podIPs }, signal)
    return { result: 'enrolled' }
  }

  private check (req: CniPodRequest): CniAnswer {
    const snapshot = this.deps.current()
    const pod = findPod(snapshot, req)
    if (snapshot === null || pod === null) throw ferryError('FERRY_ERR_CNI', `pod ${podName(req)} is not in the agent's cluster snapshot`)
    const decision = meshDecision(pod, snapshot.namespaces.find((n) => n.name === pod.namespace))
    if (!decision.meshed) return { result: 'not-meshed' }
    if (this.deps.enroller.enrolledPods().some((e) => e.plan.pod.uid === pod.uid)) return { result: 'enrolled' }
    const pending = this.deps.enroller.status().pending.find((p) => p.uid === pod.uid)
    throw ferryError('FERRY_ERR_ENROLL', `pod ${podName(req)} is meshed but not enrolled${pending === undefined ? '' : `: ${pending.error}`}`)
  }

  /** The pod from the current snapshot, or from the first later one that has it; FERRY_ERR_CNI at the deadline. */
  private async waitForPod (req: CniPodRequest, signal: AbortSignal): Promise<Pod> {
    const now = findPod(this.deps.current(), req)
    if (now !== null) return now
    this.deps.log.info({ pod: podName(req), uid: req.uid, timeoutMs: req.timeoutMs }, 'cni: waiting for discovery to show the pod')
    return await new Promise<Pod>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiting.delete(waiter)
        reject(ferryError('FERRY_ERR_CNI', `pod ${podName(req)}${req.uid === null ? '' : ` (uid ${req.uid})`} did not appear in the agent's cluster snapshot before the plugin's timeout (${req.timeoutMs} ms)`))
      }
      const waiter: PodWaiter = {
        request: req,
        found: (pod) => { this.waiting.delete(waiter); signal.removeEventListener('abort', onAbort); resolve(pod) },
        fail: (err) => { this.waiting.delete(waiter); signal.removeEventListener('abort', onAbort); reject(err) }
      }
      if (signal.aborted) { onAbort(); return }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiting.add(waiter)
    })
  }

  /** CNI_NETNS as a path the agent can open: /proc/PID/… is the host's procfs, mounted elsewhere in the DaemonSet. */
  private hostPath (netns: string): string {
    const hostProc = this.deps.hostProc
    if (hostProc === undefined || hostProc === '/proc' || !netns.startsWith('/proc/')) return netns
    return join(hostProc, netns.slice('/proc/'.length))
  }
}

/** By UID when the request has one (a replaced pod of the same name is another pod), else by namespace/name. */
function findPod (snapshot: ClusterSnapshot | null, req: Pick<CniPodRequest, 'uid' | 'namespace' | 'name'>): Pod | null {
  if (snapshot === null) return null
  for (const p of snapshot.pods) {
    if (req.uid !== null ? p.uid === req.uid : (p.namespace === req.namespace && p.name === req.name)) return p
  }
  return null
}
