import type { Server, Socket } from 'node:net'
import { closeServer, type Connector, createInboundHandler, createOutboundHandler, type Mesh, type Routes, serve, type Shortcuts } from '../proxy'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import { joinHop, onceBusy, spliceWhenBusy } from '../agent/hop-shortcut'
import type { NetnsHandle, Platform } from '../agent/platform'
import type { DataPathCapture } from './data-path-capture'
import type { PodToServe } from './protocol'

// A worker serving one enrolled pod: the proxy's handlers for it (outbound, inbound), the
// connector that makes sockets inside its netns, and the worker's own listeners of the
// pod (made by the main thread, which keeps its own fd of each). All or nothing: a
// failure closes what was served and throws.

export interface ServeContext {
  readonly connectInNetns: Platform['connectInNetns']
  readonly capture: DataPathCapture
  readonly routes: Routes
  readonly telemetry: ConnTelemetry
  readonly log: Logger
  readonly connectTimeoutMs?: number
  readonly mesh?: Mesh
  /** Plaintext pod <-> proxy hops bypass TCP through sockmap (--sockmap). */
  readonly sockmap: boolean
  readonly metrics: Pick<ProxyMetrics, 'shortcut'>
  /** Every socket the pod's connections use, accepted or made (the worker resets them all if it fails). */
  readonly track: (socket: Socket) => void
}

export interface ServedPod {
  readonly spec: PodToServe
  readonly netns: NetnsHandle
  readonly servers: readonly Server[]
  /** Makes sockets inside the pod's netns (the same-node path and the tunnel connect to the pod with it). */
  readonly connector: Connector
}

export async function servePod (spec: PodToServe, netns: NetnsHandle, ctx: ServeContext): Promise<ServedPod> {
  const { pod } = spec
  const name = `${pod.namespace}/${pod.name}`
  const servers: Server[] = []
  // Shortcuts are set up once a connection has shown it is more than one request (onceBusy).
  const hop = !ctx.sockmap
    ? null
    : (socket: Socket): void => { onceBusy(socket, () => { ctx.metrics.shortcut('hop', joinHop(ctx.capture, netns.cookie, socket)) }) }
  const made = podConnector(ctx.connectInNetns, netns, new Set(pod.podIPs), hop)
  const connector: Connector = (req) => {
    const socket = made(req)
    ctx.track(socket)
    return socket
  }
  const shortcuts: Shortcuts | undefined = hop === null
    ? undefined
    : {
        join: hop,
        splice: (down, up, dest) => dest.netnsCookie === undefined
          ? null
          : spliceWhenBusy(ctx.capture, netns.cookie, down, dest.netnsCookie, up, (ok) => { ctx.metrics.shortcut('splice', ok) })
      }
  const outbound = createOutboundHandler({
    pod,
    originalDst: (family, port) => ctx.capture.originalDst(netns.cookie, family, port),
    routes: ctx.routes,
    connector,
    telemetry: ctx.telemetry,
    connectTimeoutMs: ctx.connectTimeoutMs,
    ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }),
    ...(shortcuts === undefined ? {} : { shortcuts })
  })
  const ownAddresses = spec.listeners.filter((l) => l.role === 'inbound').map((l) => ({ family: l.family, address: l.address, port: l.port }))
  const inbound = createInboundHandler({ pod, routes: ctx.routes, connector, telemetry: ctx.telemetry, connectTimeoutMs: ctx.connectTimeoutMs, ownAddresses, ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }) })
  try {
    for (const l of spec.listeners) {
      const listener = `${l.role} ${l.family === 6 ? `[${l.address}]` : l.address}:${l.port}`
      const handler = l.role === 'outbound' ? outbound : inbound
      servers.push(await serve(l.target, (socket) => { ctx.track(socket); handler(socket) }, (err) => {
        ctx.log.warn({ err, pod: name, listener }, 'accept failed')
      }))
    }
  } catch (err) {
    await Promise.all(servers.map(closeServer))
    throw err
  }
  return Object.freeze({ spec, netns, servers: Object.freeze(servers), connector })
}

export async function unservePod (p: ServedPod): Promise<void> {
  await Promise.all(p.servers.map(closeServer))
}

/**
 * Makes sockets inside the pod's netns. One that connects to the pod's own address
 * (tunnel delivery, over the pod's lo) is handed to `hop` once connected (which joins
 * the hop shortcut when the connection turns out busy); the same-node path asks it not
 * to (it splices instead).
 */
function podConnector (connectInNetns: Platform['connectInNetns'], ns: NetnsHandle, podIPs: ReadonlySet<string>, hop: ((s: Socket) => void) | null): Connector {
  if (hop === null) return (req) => connectInNetns(ns, req)
  return (req) => {
    const socket = connectInNetns(ns, req)
    if (req.joinHop !== false && podIPs.has(req.host)) socket.once('connect', () => { hop(socket) })
    return socket
  }
}
