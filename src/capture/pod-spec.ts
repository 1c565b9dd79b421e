import { statSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { isIP } from 'node:net'
import { ferryError } from '../errors'
import type { Netns } from '../native'
import { MAX_WORKERS, UID_LEN } from './map-layout'

// What the agent tells the capture controller about a pod, checked once here.

export interface PodCaptureSpec {
  /** Stable key: pins live at <pinRoot>/pods/<uid>/. */
  uid: string
  netns: Netns
  /** Absolute cgroup v2 directory of the pod. */
  cgroupPath: string
  /** The pod's v4/v6 addresses (sk_lookup, and the outbound "own IP" skip). */
  podIPs: string[]
  excludeOutboundPorts: number[]
  excludeInboundPorts: number[]
  /**
   * Ports the pod's probes name: a connection the kubelet makes to one of them reaches
   * the application directly (bpf/kubelet.bpf.c, bpf/sk_lookup.bpf.c). Default none.
   */
  probePorts?: number[]
  /**
   * Listening fds inside the pod netns, one pair per data-path worker (index = worker
   * id, 1 to MAX_WORKERS pairs): 127.0.0.1:15006 and [::1]:15006 (V6ONLY). Workers
   * beyond the list have no listener for the pod.
   */
  inboundListenerFds: ReadonlyArray<{ v4: number, v6: number }>
  /** Drop inbound SYNs while the pod's listener is gone (agent restarting). Default true. */
  failClosed?: boolean
}

// A pin directory name: no slashes, no dot names, fits ferry_slots' key with its NUL.
const UID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

export function checkUid (uid: unknown): asserts uid is string {
  if (typeof uid !== 'string' || !UID_RE.test(uid) || Buffer.byteLength(uid) >= UID_LEN) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `pod uid must match ${String(UID_RE)} and be shorter than ${UID_LEN} bytes, got ${JSON.stringify(uid)}`)
  }
}

export function checkPodSpec (spec: PodCaptureSpec): void {
  const bad = (what: string): never => { throw ferryError('FERRY_ERR_INVALID_ARG', `pod ${String(spec.uid)}: ${what}`) }
  checkUid(spec.uid)
  if (spec.netns === undefined || spec.netns.fd < 0) bad('netns is missing or closed')
  if (typeof spec.cgroupPath !== 'string' || !isAbsolute(spec.cgroupPath)) bad(`cgroupPath must be absolute, got ${String(spec.cgroupPath)}`)
  let isDir = false
  try { isDir = statSync(spec.cgroupPath).isDirectory() } catch {}
  if (!isDir) throw ferryError('FERRY_ERR_CGROUP', `pod ${spec.uid}: cgroup ${spec.cgroupPath} does not exist`)
  if (!Array.isArray(spec.podIPs)) bad('podIPs must be an array')
  for (const ip of spec.podIPs) if (typeof ip !== 'string' || isIP(ip) === 0) bad(`not an IP address: ${String(ip)}`)
  for (const [name, ports] of [['excludeOutboundPorts', spec.excludeOutboundPorts], ['excludeInboundPorts', spec.excludeInboundPorts], ['probePorts', spec.probePorts ?? []]] as const) {
    if (!Array.isArray(ports)) bad(`${name} must be an array`)
    for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) bad(`${name}: not a port: ${String(p)}`)
  }
  const workers = spec.inboundListenerFds
  if (!Array.isArray(workers) || workers.length < 1 || workers.length > MAX_WORKERS) bad(`inboundListenerFds must list 1 to ${MAX_WORKERS} workers' listeners`)
  for (const fds of workers) {
    if (fds === undefined || fds === null || !Number.isInteger(fds.v4) || !Number.isInteger(fds.v6) || fds.v4 < 0 || fds.v6 < 0) bad('inboundListenerFds: each worker needs v4 and v6 fds')
  }
  if (spec.failClosed !== undefined && typeof spec.failClosed !== 'boolean') bad('failClosed must be a boolean')
}
