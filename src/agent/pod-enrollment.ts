import { closeSync } from 'node:fs'
import type { Server, Socket } from 'node:net'
import { PORTS } from '../config/env'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { closeServer, type Connector, createInboundHandler, createOutboundHandler, type Mesh, type Routes, serve, type ListenTarget, type Shortcuts } from '../proxy'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import { joinHop, onceBusy, spliceWhenBusy } from './hop-shortcut'
import type { WorkloadIdentity } from './identities'
import type { PodPlan } from './plan'
import type { CaptureHandle, NetnsHandle, Platform } from './platform'

// Enrolling one pod, all or nothing: open its netns, create its four listeners inside it
// (outbound and inbound, 127.0.0.1 and [::1]), serve them with the proxy's handlers,
// then hand the pod to capture. Any failure undoes what was done and throws one
// FERRY_ERR_ENROLL naming the pod and the step.

export interface EnrollContext {
  readonly platform: Platform
  readonly capture: CaptureHandle
  readonly routes: Routes
  readonly telemetry: ConnTelemetry
  readonly log: Logger
  readonly connectTimeoutMs?: number
  /** Pods' SPIFFE IDs and current certificates (svidFor); null when the agent has no CA. */
  readonly identity?: WorkloadIdentity | null
  /** The node's mesh as the proxy sees it (local pods, tunnel, inbound mode). */
  readonly mesh?: Mesh
  /** Plaintext pod <-> proxy hops bypass TCP through sockmap (--sockmap, default on). */
  readonly sockmap?: boolean
  /** Counts each shortcut asked for (ferry_sockmap_shortcuts_total). */
  readonly metrics?: Pick<ProxyMetrics, 'shortcut'>
}

export interface EnrolledPod {
  readonly plan: PodPlan
  readonly netns: NetnsHandle
  readonly servers: readonly Server[]
  /** Makes sockets inside the pod's netns (the same-node path and the tunnel connect to the pod with it). */
  readonly connector: Connector
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
  const servers: Server[] = []
  const unserved: number[] = []
  try {
    netns = ctx.platform.openNetns(location.netnsPath)
    const ns = netns
    // Shortcuts are set up once a connection has shown it is more than one request (onceBusy).
    const hop = ctx.sockmap === false
      ? null
      : (socket: Socket): void => { onceBusy(socket, () => { ctx.metrics?.shortcut('hop', joinHop(ctx.capture, ns.cookie, socket)) }) }
    const connector = podConnector(ctx.platform, ns, new Set(pod.podIPs), hop)
    const shortcuts: Shortcuts | undefined = hop === null
      ? undefined
      : {
          join: hop,
          splice: (down, up, dest) => dest.netnsCookie === undefined
            ? null
            : spliceWhenBusy(ctx.capture, ns.cookie, down, dest.netnsCookie, up, (ok) => { ctx.metrics?.shortcut('splice', ok) })
        }
    const outbound = createOutboundHandler({
      pod,
      originalDst: (family, port) => ctx.capture.originalDst(ns.cookie, family, port),
      routes: ctx.routes,
      connector,
      telemetry: ctx.telemetry,
      connectTimeoutMs: ctx.connectTimeoutMs,
      ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }),
      ...(shortcuts === undefined ? {} : { shortcuts })
    })
    const ownAddresses = LISTENERS.filter((l) => l.role === 'inbound')
    const inbound = createInboundHandler({ pod, routes: ctx.routes, connector, telemetry: ctx.telemetry, connectTimeoutMs: ctx.connectTimeoutMs, ownAddresses, ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }) })
    const inboundFds = { v4: -1, v6: -1 }
    for (const l of LISTENERS) {
      step = `listen ${l.role} ${l.family === 6 ? `[${l.address}]` : l.address}:${l.port}`
      const target: ListenTarget = ctx.platform.listen(ns, l)
      if ('fd' in target) unserved.push(target.fd)
      const server = await serve(target, l.role === 'outbound' ? outbound : inbound, (err) => {
        ctx.log.warn({ err, pod: name, listener: step }, 'accept failed')
      })
      if ('fd' in target) unserved.pop()
      servers.push(server)
      if (l.role === 'inbound') inboundFds[l.family === 4 ? 'v4' : 'v6'] = 'fd' in target ? target.fd : -1
    }
    step = 'enroll in capture'
    ctx.capture.enrollPod({
      uid: pod.uid,
      netns: ns,
      cgroupPath: location.cgroupPath,
      podIPs: [...pod.podIPs],
      excludeOutboundPorts: [...plan.excludeOutboundPorts],
      excludeInboundPorts: [...plan.excludeInboundPorts],
      probePorts: [...pod.probePorts],
      inboundListenerFds: [inboundFds]
    })
    return Object.freeze({ plan, netns: ns, servers: Object.freeze(servers), connector, enrolledAt: new Date().toISOString() })
  } catch (err) {
    // A listening fd that never became a server is still ours to close. (Node closes an
    // fd itself only once it wrapped it in a handle, i.e. after serve() got that far.)
    for (const fd of unserved) { try { closeSync(fd) } catch {} }
    await Promise.all(servers.map(closeServer))
    try { netns?.close() } catch {}
    throw enrollError(name, step, err)
  }
}

/**
 * Makes sockets inside the pod's netns. One that connects to the pod's own address
 * (tunnel delivery, over the pod's lo) is handed to `hop` once connected (which joins
 * the hop shortcut when the connection turns out busy); the same-node path asks it not
 * to (it splices instead).
 */
function podConnector (platform: Platform, ns: NetnsHandle, podIPs: ReadonlySet<string>, hop: ((s: Socket) => void) | null): Connector {
  if (hop === null) return (req) => platform.connectInNetns(ns, req)
  return (req) => {
    const socket = platform.connectInNetns(ns, req)
    if (req.joinHop !== false && podIPs.has(req.host)) socket.once('connect', () => { hop(socket) })
    return socket
  }
}

/** Stops proxying for a pod. With `releaseCapture` the pod leaves capture too; without (agent shutdown) its pins stay. */
export async function unenrollPod (e: EnrolledPod, capture: CaptureHandle, releaseCapture: boolean): Promise<void> {
  let failure: unknown = null
  if (releaseCapture) {
    try { capture.unenrollPod(e.plan.pod.uid) } catch (err) { failure = err }
  }
  await Promise.all(e.servers.map(closeServer))
  try { e.netns.close() } catch {}
  if (failure !== null) throw enrollError(`${e.plan.pod.namespace}/${e.plan.pod.name}`, 'unenroll from capture', failure)
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
