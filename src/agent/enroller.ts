import { statSync } from 'node:fs'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import type { PodLocator } from '../discovery/pod-locator'
import { ferryError, type FerryError } from '../errors'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import { trace } from '../telemetry/trace'
import { type NodePlan, type PodHints, planNode } from './plan'
import { type EnrollContext, type EnrolledPod, enrollPod, releaseListeners, unenrollPod } from './pod-enrollment'

// Keeps this node's enrolled pods equal to the latest snapshot's plan. One pass at a
// time (a snapshot arriving mid-pass triggers another pass); each pod is handled on its
// own, so one failing pod is logged (FERRY_ERR_ENROLL), retried with backoff, and never
// blocks the others. A pod that cannot be located yet (on a cluster: its object is
// there, its sandbox process not yet) is located again with the same backoff, without
// waiting for the cluster to change. The first pass tells capture which pods to keep
// (capture.reconcile), so pins of pods that vanished while no agent ran are removed.
//
// The node is ready once that first pass has tried every pod: a pod that cannot be
// enrolled (its sandbox is not there yet, a bad annotation, a process of the pod already
// listening on Ferry's ports) is that pod's problem — reported once per distinct reason
// (log, onFailure: a Kubernetes Event on a cluster, `ferry_pods_not_enrolled`) and
// retried — and never keeps the node's agent unready.
//
// A pod's CNI ADD (src/agent/cni-enroll.ts) goes through the same passes: it leaves
// hints (the sandbox's netns, the pod's IPs) and waits for the pass that enrolls the pod
// or fails to (enrollFromCni); the hints stay until the pod's CNI DEL or its departure.

const TRACE = trace('agent')

export const RETRY = Object.freeze({ initialMs: 500, maxMs: 30_000 })

export interface EnrollerDeps extends EnrollContext {
  readonly node: string
  readonly log: Logger
  readonly locator: PodLocator
  readonly metrics: ProxyMetrics
  readonly retry?: { initialMs: number, maxMs: number }
  /**
   * Told the enrolled pods after each enrollment (`passDone` false: a pod whose plan
   * changed may be between its old and new enrollment, so only additions count) and at
   * the end of each pass (`passDone` true: the set is settled). The node's identities
   * follow it, without dropping an identity while its pod is re-enrolled.
   */
  readonly onEnrolledChange?: (pods: readonly Pod[], passDone: boolean) => void
  /** Told once per pod and distinct reason when a local meshed pod cannot be enrolled (an Event on a cluster). */
  readonly onFailure?: (pod: Pod, error: FerryError) => void
}

export interface PendingPod {
  readonly uid: string
  readonly pod: string
  readonly code: string
  readonly error: string
  readonly attempts: number
}

export interface EnrollmentStatus {
  /** The first pass over a snapshot has tried every pod (and the enroller is not draining). */
  readonly ready: boolean
  readonly generation: number
  readonly enrolled: string[]
  readonly pending: PendingPod[]
}

interface Failure { error: FerryError, attempts: number, retryAt: number }

/** Why a local meshed pod is not enrolled: `ferry_pods_not_enrolled{reason}`. */
export type NotEnrolledReason = 'not_located' | 'invalid_annotation' | 'port_in_use' | 'error' | 'pending'

interface Waiter { resolve: (e: EnrolledPod) => void, reject: (err: FerryError) => void }

export class PodEnroller {
  private snapshot: ClusterSnapshot | null = null
  private plan: NodePlan = { plans: new Map(), blocked: new Map() }
  private readonly enrolled = new Map<string, EnrolledPod>()
  /** Pod IP → enrolled pod: the data path's "is this endpoint a pod of this node?" */
  private readonly byIP = new Map<string, EnrolledPod>()
  private readonly failures = new Map<string, Failure>()
  private readonly reported = new Map<string, string>()
  private reconciled = false
  /** A pass over a snapshot has completed: every pod of it was tried once. */
  private firstPassDone = false
  private running: Promise<void> | null = null
  private again = false
  private retryTimer: NodeJS.Timeout | null = null
  private closed = false
  /** Blocked pods located again: attempts so far and when next (reset by every snapshot). */
  private readonly blockedRetries = new Map<string, { attempts: number, retryAt: number }>()
  private readonly retry: { initialMs: number, maxMs: number }
  /** uid → what the pod's CNI ADD said. */
  private readonly hints = new Map<string, PodHints>()
  /** uid → CNI ADDs waiting for the pod's enrollment. */
  private readonly waiters = new Map<string, Set<Waiter>>()

  constructor (private readonly deps: EnrollerDeps) {
    this.retry = deps.retry ?? RETRY
  }

  apply (snapshot: ClusterSnapshot): void {
    if (this.closed) return
    this.snapshot = snapshot
    if (this.hints.size > 0) {
      const present = new Set(snapshot.pods.map((p) => p.uid))
      for (const uid of [...this.hints.keys()]) if (!present.has(uid)) this.hints.delete(uid)
    }
    this.plan = planNode(snapshot, this.deps.node, this.deps.locator, this.hints)
    this.blockedRetries.clear()
    for (const [uid, { pod, error }] of this.plan.blocked) this.reportOnce(uid, pod, error)
    this.settleWaiters()
    this.kick()
  }

  /**
   * Enrolls a pod of the current snapshot where its CNI ADD says it lives, now (any
   * backoff is skipped): resolves once it is enrolled as planned with these hints,
   * rejects (FERRY_ERR_ENROLL) with the reason it cannot be. `signal` ends the wait
   * (the request's deadline); the pod's enrollment goes on regardless.
   */
  async enrollFromCni (uid: string, hints: PodHints, signal?: AbortSignal): Promise<EnrolledPod> {
    if (this.closed || this.snapshot === null) throw ferryError('FERRY_ERR_ENROLL', 'the agent is shutting down or has no cluster snapshot yet')
    return await new Promise<EnrolledPod>((resolve, reject) => {
      const stop = (): void => {
        const set = this.waiters.get(uid)
        set?.delete(waiter)
        if (set?.size === 0) this.waiters.delete(uid)
        reject(ferryError('FERRY_ERR_ENROLL', `pod uid ${uid} was not enrolled before the deadline of its CNI request${this.failures.has(uid) ? `: ${this.failures.get(uid)?.error.message ?? ''}` : ''}`))
      }
      const waiter: Waiter = {
        resolve: (e) => { signal?.removeEventListener('abort', stop); resolve(e) },
        reject: (err) => { signal?.removeEventListener('abort', stop); reject(err) }
      }
      if (signal?.aborted === true) { stop(); return }
      signal?.addEventListener('abort', stop, { once: true })
      const set = this.waiters.get(uid) ?? new Set<Waiter>()
      set.add(waiter)
      this.waiters.set(uid, set)
      // The ADD of a pod enrolled already (from discovery, before the ADD reached us) names
      // the netns it is enrolled in by another path: keep that path, so the plan's
      // fingerprint holds and the pod is not re-enrolled (which would lift capture for a moment).
      const enrolled = this.enrolled.get(uid)
      const netnsPath = enrolled !== undefined && sameNetns(enrolled.plan.location.netnsPath, hints.netnsPath) ? enrolled.plan.location.netnsPath : hints.netnsPath
      this.hints.set(uid, Object.freeze({ netnsPath, podIPs: Object.freeze([...hints.podIPs]) }))
      this.failures.delete(uid)
      this.blockedRetries.delete(uid)
      this.plan = planNode(this.snapshot as ClusterSnapshot, this.deps.node, this.deps.locator, this.hints)
      const blocked = this.plan.blocked.get(uid)
      if (blocked !== undefined) this.reportOnce(uid, blocked.pod, blocked.error)
      this.settleWaiters()
      this.kick()
    })
  }

  /** The pod's CNI DEL: its sandbox is gone, so are its hints. Unenrolling follows discovery. */
  forgetHints (uid: string): boolean {
    return this.hints.delete(uid)
  }

  /** Answers waiters the plan already decides: enrolled as planned, or not plannable. */
  private settleWaiters (): void {
    for (const uid of [...this.waiters.keys()]) {
      const plan = this.plan.plans.get(uid)
      const e = this.enrolled.get(uid)
      if (plan !== undefined && e !== undefined && e.plan.fingerprint === plan.fingerprint) { this.resolveWaiters(uid, e); continue }
      const blocked = this.plan.blocked.get(uid)
      if (blocked !== undefined) { this.rejectWaiters(uid, ferryError('FERRY_ERR_ENROLL', blocked.error.message, { cause: blocked.error })); continue }
      if (plan === undefined) this.rejectWaiters(uid, ferryError('FERRY_ERR_ENROLL', `pod uid ${uid} is not a meshed, running pod of node ${this.deps.node} in the current snapshot`))
    }
  }

  private resolveWaiters (uid: string, e: EnrolledPod): void {
    const set = this.waiters.get(uid)
    this.waiters.delete(uid)
    for (const w of set ?? []) w.resolve(e)
  }

  private rejectWaiters (uid: string, err: FerryError): void {
    const set = this.waiters.get(uid)
    this.waiters.delete(uid)
    for (const w of set ?? []) w.reject(err)
  }

  private rejectAllWaiters (why: string): void {
    for (const uid of [...this.waiters.keys()]) this.rejectWaiters(uid, ferryError('FERRY_ERR_ENROLL', why))
  }

  /** Blocked pods worth locating again: not found yet (a bad annotation waits for a new snapshot instead). */
  private relocatable (): string[] {
    return [...this.plan.blocked].filter(([, b]) => b.error.code === 'FERRY_ERR_ENROLL' && b.pod.podIPs.length > 0).map(([uid]) => uid)
  }

  /** Locates the blocked pods of the current snapshot again; those found join the plan. */
  private replanBlocked (): void {
    const snapshot = this.snapshot
    if (snapshot === null || this.plan.blocked.size === 0) return
    const now = Date.now()
    const relocate = new Set(this.relocatable())
    const due = snapshot.pods.filter((p) => relocate.has(p.uid) && (this.blockedRetries.get(p.uid)?.retryAt ?? 0) <= now)
    if (due.length === 0) return
    const again = planNode({ ...snapshot, pods: due }, this.deps.node, this.deps.locator, this.hints)
    const plans = new Map(this.plan.plans)
    const blocked = new Map(this.plan.blocked)
    for (const [uid, plan] of again.plans) { plans.set(uid, plan); blocked.delete(uid); this.blockedRetries.delete(uid) }
    for (const [uid, b] of again.blocked) {
      blocked.set(uid, b)
      const attempts = (this.blockedRetries.get(uid)?.attempts ?? 0) + 1
      this.blockedRetries.set(uid, { attempts, retryAt: now + Math.min(this.retry.initialMs * 2 ** (attempts - 1), this.retry.maxMs) })
      this.reportOnce(uid, b.pod, b.error)
    }
    this.plan = { plans, blocked }
  }

  /** Resolves when no pass is running or queued (tests and shutdown use it). */
  async settled (): Promise<void> {
    for (let i = 0; i < 1000 && this.running !== null; i++) await this.running
  }

  status (): EnrollmentStatus {
    const pending: PendingPod[] = []
    for (const [uid, { pod, error }] of this.plan.blocked) pending.push({ uid, pod: `${pod.namespace}/${pod.name}`, code: error.code, error: error.message, attempts: this.blockedRetries.get(uid)?.attempts ?? 0 })
    for (const [uid, plan] of this.plan.plans) {
      const e = this.enrolled.get(uid)
      if (e !== undefined && e.plan.fingerprint === plan.fingerprint) continue
      const f = this.failures.get(uid)
      pending.push({ uid, pod: `${plan.pod.namespace}/${plan.pod.name}`, code: f?.error.code ?? 'pending', error: f?.error.message ?? 'not enrolled yet', attempts: f?.attempts ?? 0 })
    }
    return {
      ready: this.firstPassDone && !this.closed,
      generation: this.snapshot?.generation ?? 0,
      enrolled: [...this.enrolled.keys()].sort(),
      pending
    }
  }

  enrolledPods (): EnrolledPod[] { return [...this.enrolled.values()] }

  /** The pod enrolled here that owns `ip` (canonical), if any. */
  enrolledByIP (ip: string): EnrolledPod | undefined { return this.byIP.get(ip) }

  /**
   * The first half of a drain (SIGTERM): not ready from now on, no more passes, every
   * listener closed (a pod's new connections find nothing on 15001/15006 and fail, as
   * during a restart) and no pod counted as enrolled here (new tunnel streams to them
   * are refused), while connections already accepted go on. Resolves once the
   * listeners are closed; `drained()` then resolves when their connections have ended.
   */
  async stopAccepting (handedOff = false): Promise<void> {
    this.closed = true
    this.rejectAllWaiters('the agent is shutting down')
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    await this.settled()
    this.byIP.clear()
    await this.deps.workers.all(handedOff ? { kind: 'stop-accepting', handedOff: true } : { kind: 'stop-accepting' })
    // Draining (not handed off): the sockets close, so a pod's new connections are refused
    // at once (capture keeps steering; fail-closed pods' SYNs get a RST) rather than queued.
    if (!handedOff) for (const e of this.enrolled.values()) releaseListeners(e)
  }

  /** Connections accepted on this node's pod listeners and tunnel streams, still open, over every worker. */
  async openConnections (): Promise<number> {
    return (await this.deps.workers.stats()).reduce((n, s) => n + s.connections, 0)
  }

  /** Stops proxying: closes every listener. Capture pins stay (capture.close() is the agent's). */
  async close (): Promise<void> {
    this.closed = true
    this.rejectAllWaiters('the agent is shutting down')
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    await this.settled()
    await Promise.all([...this.enrolled.values()].map(async (e) => { await unenrollPod(e, this.deps, false) }))
    this.enrolled.clear()
    this.byIP.clear()
    this.deps.metrics.setEnrolledPods(0)
  }

  private kick (): void {
    if (this.running !== null) { this.again = true; return }
    this.running = this.pass().finally(() => {
      this.running = null
      if (this.again && !this.closed) { this.again = false; this.kick() }
    })
  }

  private async pass (): Promise<void> {
    const { plans, blocked } = this.plan
    const { capture, log } = this.deps
    if (!this.reconciled) {
      const keep = new Set<string>([...plans.keys(), ...blocked.keys()])
      try {
        capture.reconcile(keep)
        this.reconciled = true
      } catch (err) {
        log.error({ err, code: (err as FerryError).code }, 'capture reconcile failed; will retry')
      }
    }
    // Leave first: pods gone from the plan, or whose plan changed (re-enrolled below).
    for (const [uid, e] of [...this.enrolled]) {
      const plan = plans.get(uid)
      if (plan !== undefined && plan.fingerprint === e.plan.fingerprint) continue
      this.enrolled.delete(uid)
      for (const ip of e.plan.pod.podIPs) if (this.byIP.get(ip) === e) this.byIP.delete(ip)
      try {
        await unenrollPod(e, this.deps, true)
        log.info({ uid, pod: `${e.plan.pod.namespace}/${e.plan.pod.name}`, reason: plan === undefined ? 'gone' : 'changed' }, 'pod unenrolled')
      } catch (err) {
        log.error({ uid, code: (err as FerryError).code, err: (err as Error).message }, 'pod unenroll failed')
      }
    }
    for (const uid of [...this.failures.keys()]) if (!plans.has(uid)) this.failures.delete(uid)
    for (const uid of [...this.reported.keys()]) if (!plans.has(uid) && !blocked.has(uid)) this.reported.delete(uid)
    const now = Date.now()
    for (const [uid, plan] of plans) {
      if (this.closed) break
      if (this.enrolled.has(uid)) continue
      const failure = this.failures.get(uid)
      if (failure !== undefined && failure.retryAt > now) continue
      const name = `${plan.pod.namespace}/${plan.pod.name}`
      try {
        const e = await enrollPod(plan, this.deps)
        if (this.closed) { await unenrollPod(e, this.deps, false); break }
        this.enrolled.set(uid, e)
        for (const ip of plan.pod.podIPs) this.byIP.set(ip, e)
        this.changed(false)
        this.failures.delete(uid)
        this.reported.delete(uid)
        log.info({ uid, pod: name, netns: plan.location.netnsPath, cgroup: plan.location.cgroupPath, podIPs: plan.pod.podIPs, cni: this.hints.has(uid) }, 'pod enrolled')
        if (this.plan.plans.get(uid)?.fingerprint === plan.fingerprint) this.resolveWaiters(uid, e)
      } catch (err) {
        const attempts = (failure?.attempts ?? 0) + 1
        const delay = Math.min(this.retry.initialMs * 2 ** (attempts - 1), this.retry.maxMs)
        this.failures.set(uid, { error: err as FerryError, attempts, retryAt: Date.now() + delay })
        log.error({ uid, pod: name, code: (err as FerryError).code, errno: (err as FerryError).errno, err: (err as Error).message, attempts, retryInMs: delay }, 'pod enrollment failed')
        this.notifyFailure(uid, plan.pod, err as FerryError)
        if (this.plan.plans.get(uid)?.fingerprint === plan.fingerprint) this.rejectWaiters(uid, err as FerryError)
      }
    }
    if (this.snapshot !== null) this.firstPassDone = true
    this.deps.metrics.setEnrolledPods(this.enrolled.size)
    this.deps.metrics.setPodsNotEnrolled(this.notEnrolledByReason())
    this.changed(true)
    if (TRACE.on) TRACE('pass', { enrolled: this.enrolled.size, failing: this.failures.size, blocked: blocked.size })
    this.scheduleRetry()
  }

  private changed (passDone: boolean): void {
    if (this.closed) return
    this.deps.onEnrolledChange?.([...this.enrolled.values()].map((e) => e.plan.pod), passDone)
  }

  private scheduleRetry (): void {
    if (this.retryTimer !== null) { clearTimeout(this.retryTimer); this.retryTimer = null }
    const relocate = this.relocatable()
    if (this.closed || (this.failures.size === 0 && relocate.length === 0 && this.reconciled)) return
    let next = Infinity
    for (const f of this.failures.values()) next = Math.min(next, f.retryAt)
    for (const uid of relocate) next = Math.min(next, this.blockedRetries.get(uid)?.retryAt ?? 0)
    const delay = next === Infinity ? this.retry.initialMs : Math.max(0, next - Date.now())
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.replanBlocked(); this.kick() }, delay)
  }

  private reportOnce (uid: string, pod: Pod, error: FerryError): void {
    if (this.reported.get(uid) === error.message) return
    this.deps.log.error({ uid, pod: `${pod.namespace}/${pod.name}`, code: 'FERRY_ERR_ENROLL', cause: error.code, err: error.message }, 'pod cannot be enrolled')
    // Not located yet (no IP, no sandbox) is how every pod starts on a cluster: logged, not an Event.
    if (error.code === 'FERRY_ERR_ENROLL') this.reported.set(uid, error.message)
    else this.notifyFailure(uid, pod, error)
  }

  /** onFailure once per pod and distinct reason (a retry failing the same way says nothing new). */
  private notifyFailure (uid: string, pod: Pod, error: FerryError): void {
    if (this.reported.get(uid) === error.message) return
    this.reported.set(uid, error.message)
    try { this.deps.onFailure?.(pod, error) } catch (err) { this.deps.log.warn({ err, uid }, 'enrollment failure report failed') }
  }

  /** Local meshed pods not enrolled now, by reason (the metric's label). */
  private notEnrolledByReason (): Record<NotEnrolledReason, number> {
    const out: Record<NotEnrolledReason, number> = { not_located: 0, invalid_annotation: 0, port_in_use: 0, error: 0, pending: 0 }
    for (const { error } of this.plan.blocked.values()) out[error.code === 'FERRY_ERR_ENROLL' ? 'not_located' : 'invalid_annotation']++
    for (const uid of this.plan.plans.keys()) {
      if (this.enrolled.has(uid)) continue
      const f = this.failures.get(uid)
      out[f === undefined ? 'pending' : f.error.errno === 'EADDRINUSE' ? 'port_in_use' : 'error']++
    }
    return out
  }
}

/** Whether two paths open the same network namespace (/proc/PID/ns/net, a bind mount under /var/run/netns): the same nsfs inode. */
function sameNetns (a: string, b: string): boolean {
  if (a === b) return true
  try {
    const x = statSync(a)
    const y = statSync(b)
    return x.dev === y.dev && x.ino === y.ino
  } catch {
    return false
  }
}
