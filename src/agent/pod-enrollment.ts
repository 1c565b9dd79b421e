import { closeSync } from 'node:fs'
import { PORTS } from '../config/env'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { socketNetnsCookie } from '../native'
import type { PodListener, PodToServe } from '../worker/protocol'
import type { PodPlan } from './plan'
import type { CaptureHandle, NetnsHandle, Platform } from './platform'
import type { WorkerSet } from './workers'

// Enrolling one pod, all or nothing: open its netns, create each worker's four listeners
// inside it (outbound and inbound, 127.0.0.1 and [::1]; with several workers the
// listeners of one address share it through SO_REUSEPORT and the kernel's selection
// picks among them, bpf/sk_lookup.bpf.c), have every worker serve its own, then hand the
// pod to capture. The main thread keeps its fd of every listener (workers serve
// duplicates), so a socket outlives a worker that fails. Any failure undoes what was
// done and throws one FERRY_ERR_ENROLL naming the pod and the step.

export interface EnrollContext {
  readonly platform: Platform
  readonly capture: CaptureHandle
  readonly workers: WorkerSet
  /** A listening socket the agent before us handed over (src/handoff), by key; undefined: make one. */
  readonly adopt?: (key: string) => number | undefined
}

export interface EnrolledPod {
  readonly plan: PodPlan
  readonly netns: NetnsHandle
  /** Each worker's listeners, by worker id; the fds are the main thread's. */
  readonly listeners: ReadonlyArray<readonly PodListener[]>
  /** Where the first worker's listeners are bound (the test platforms bind port 0). */
  readonly addresses: ReadonlyArray<{ address: string, port: number } | null>
  readonly enrolledAt: string
}

const LISTENERS = [
  { role: 'outbound', family: 4, address: '127.0.0.1', port: PORTS.outbound },
  { role: 'outbound', family: 6, address: '::1', port: PORTS.outbound },
  { role: 'inbound', family: 4, address: '127.0.0.1', port: PORTS.inbound },
  { role: 'inbound', family: 6, address: '::1', port: PORTS.inbound }
] as const

export async function enrollPod (plan: PodPlan, ctx: EnrollContext): Promise<EnrolledPod> {
  const { pod, location } = plan
  const name = `${pod.namespace}/${pod.name}`
  let step = 'open netns'
  let netns: NetnsHandle | null = null
  const listeners: PodListener[][] = []
  let served = false
  try {
    netns = ctx.platform.openNetns(location.netnsPath)
    const ns = netns
    const shared = ctx.workers.size > 1
    for (let w = 0; w < ctx.workers.size; w++) {
      const own: PodListener[] = []
      listeners.push(own)
      for (const l of LISTENERS) {
        step = `listen ${l.role} ${l.family === 6 ? `[${l.address}]` : l.address}:${l.port}`
        own.push({ ...l, target: adoptedIn(ns, ctx.adopt?.(podListenerKey(pod.uid, l.role, l.family, w))) ?? ctx.platform.listen(ns, { ...l, reusePort: shared }) })
      }
    }
    step = 'serve'
    const spec = (w: number): PodToServe => ({ uid: pod.uid, pod, netns: { fd: ns.fd, path: ns.path, cookie: ns.cookie }, listeners: listeners[w] })
    const addresses = await ctx.workers.servePod(spec)
    served = true
    step = 'enroll in capture'
    ctx.capture.enrollPod({
      uid: pod.uid,
      netns: ns,
      cgroupPath: location.cgroupPath,
      podIPs: [...pod.podIPs],
      excludeOutboundPorts: [...plan.excludeOutboundPorts],
      excludeInboundPorts: [...plan.excludeInboundPorts],
      probePorts: [...pod.probePorts],
      inboundListenerFds: listeners.map((own) => ({ v4: inboundFd(own, 4), v6: inboundFd(own, 6) }))
    })
    return Object.freeze({ plan, netns: ns, listeners: Object.freeze(listeners.map((l) => Object.freeze(l))), addresses, enrolledAt: new Date().toISOString() })
  } catch (err) {
    if (served) await ctx.workers.unservePod(pod.uid).catch(() => {})
    closeListeners(listeners)
    try { netns?.close() } catch {}
    throw enrollError(name, step, err)
  }
}

/** The request that serves `e` again on a restarted worker (with the main thread's fds; WorkerSet duplicates them). */
export function serveAgain (e: EnrolledPod, worker: number): PodToServe {
  return { uid: e.plan.pod.uid, pod: e.plan.pod, netns: { fd: e.netns.fd, path: e.netns.path, cookie: e.netns.cookie }, listeners: e.listeners[worker] ?? [] }
}

/** Stops proxying for a pod. With `releaseCapture` the pod leaves capture too; without (agent shutdown) its pins stay. */
export async function unenrollPod (e: EnrolledPod, ctx: Pick<EnrollContext, 'capture' | 'workers'>, releaseCapture: boolean): Promise<void> {
  let failure: unknown = null
  if (releaseCapture) {
    try { ctx.capture.unenrollPod(e.plan.pod.uid) } catch (err) { failure = err }
  }
  try { await ctx.workers.unservePod(e.plan.pod.uid) } catch (err) { failure ??= err }
  releaseListeners(e)
  try { e.netns.close() } catch {}
  if (failure !== null) throw enrollError(`${e.plan.pod.namespace}/${e.plan.pod.name}`, 'unenroll', failure)
}

/** The handoff key of one of a pod's listening sockets. */
export function podListenerKey (uid: string, role: 'outbound' | 'inbound', family: 4 | 6, worker: number): string {
  return `pod/${uid}/${role}/${family}/w${worker}`
}

/** The pod's listening sockets to hand to the agent after us, by key. */
export function handoffListeners (e: EnrolledPod): Array<{ key: string, fd: number }> {
  return e.listeners.flatMap((own, w) => own.flatMap((l) => 'fd' in l.target ? [{ key: podListenerKey(e.plan.pod.uid, l.role, l.family, w), fd: l.target.fd }] : []))
}

/**
 * A handed-over socket, if it is inside this pod's netns now (a pod re-created under the
 * same uid has a new netns: the old socket is closed and a new one made).
 */
function adoptedIn (ns: NetnsHandle, fd: number | undefined): { fd: number } | undefined {
  if (fd === undefined) return undefined
  try {
    if (socketNetnsCookie(fd) === ns.cookie) return { fd }
  } catch {}
  try { closeSync(fd) } catch {}
  return undefined
}

function inboundFd (own: readonly PodListener[], family: 4 | 6): number {
  const l = own.find((x) => x.role === 'inbound' && x.family === family)
  return l !== undefined && 'fd' in l.target ? l.target.fd : -1
}

/** Listener sets whose fds were closed already (a drain closes them before the agent closes). */
const released = new WeakSet<EnrolledPod>()

/**
 * Closes the main thread's fds of a pod's listeners, once: with the workers' duplicates
 * closed too, the sockets close and new connections are refused (a drain). Idempotent.
 */
export function releaseListeners (e: EnrolledPod): void {
  if (released.has(e)) return
  released.add(e)
  closeListeners(e.listeners)
}

function closeListeners (listeners: ReadonlyArray<readonly PodListener[]>): void {
  for (const own of listeners) for (const l of own) if ('fd' in l.target) { try { closeSync(l.target.fd) } catch {} }
}

function enrollError (pod: string, step: string, err: unknown): FerryError {
  const cause = err as { message?: string, code?: string, errno?: string }
  const code = isFerryError(err) ? ` (${err.code}${err.errno !== undefined ? ` ${err.errno}` : ''})` : (typeof cause?.code === 'string' ? ` (${cause.code})` : '')
  const errno = typeof cause?.errno === 'string' ? cause.errno : (typeof cause?.code === 'string' && cause.code.startsWith('E') && !cause.code.startsWith('ERR') ? cause.code : undefined)
  // The one failure a pod causes itself: something in it already listens where Ferry must.
  const why = errno === 'EADDRINUSE' && step.startsWith('listen ')
    ? `the address is already in use inside the pod: a process of the pod listens on a port Ferry reserves (${PORTS.outbound} and ${PORTS.inbound} on loopback); this pod is not enrolled (retried), the rest of the node is unaffected`
    : `${cause?.message ?? String(err)}${code}`
  return ferryError('FERRY_ERR_ENROLL', `pod ${pod}: ${step} failed: ${why}`, { cause: err, errno })
}
