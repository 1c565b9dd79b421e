import type { Server, Socket } from 'node:net'
import { closeServer, type Connector, createInboundHandler, createOutboundHandler, type Mesh, type Routes, serve } from '../proxy'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import type { NetnsHandle, Platform } from '../agent/platform'
import type { DataPathCapture } from './data-path-capture'
import { podShortcuts } from './hop-shortcut'
import type { PodToServe } from './protocol'
import type { L7Deps } from '../proxy/l7-deps'

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
  /** L7 handling where it applies (absent: all L4). */
  readonly l7?: L7Deps
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
  // The kernel shortcuts (--sockmap) decorate the pod's sockets: the accepted outbound
  // ones and the ones its connector makes; the proxy sees only the splicer.
  const shortcuts = ctx.sockmap ? podShortcuts({ capture: ctx.capture, metrics: ctx.metrics }, netns.cookie, pod.podIPs) : null
  const inNetns: Connector = (req) => ctx.connectInNetns(netns, req)
  const made = shortcuts === null ? inNetns : shortcuts.connector(inNetns)
  const connector: Connector = (req) => {
    const socket = made(req)
    ctx.track(socket)
    return socket
  }
  const outbound = createOutboundHandler({
    pod,
    originalDst: (family, port) => ctx.capture.originalDst(netns.cookie, family, port),
    routes: ctx.routes,
    connector,
    telemetry: ctx.telemetry,
    connectTimeoutMs: ctx.connectTimeoutMs,
    ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }),
    ...(shortcuts === null ? {} : { splicer: shortcuts.splicer }),
    ...(ctx.l7 === undefined ? {} : { l7: ctx.l7 })
  })
  const ownAddresses = spec.listeners.filter((l) => l.role === 'inbound').map((l) => ({ family: l.family, address: l.address, port: l.port }))
  const inbound = createInboundHandler({ pod, routes: ctx.routes, connector, telemetry: ctx.telemetry, connectTimeoutMs: ctx.connectTimeoutMs, ownAddresses, ...(ctx.mesh === undefined ? {} : { mesh: ctx.mesh }), ...(ctx.l7 === undefined ? {} : { l7: ctx.l7 }) })
  try {
    for (const l of spec.listeners) {
      const listener = `${l.role} ${l.family === 6 ? `[${l.address}]` : l.address}:${l.port}`
      const handler = l.role === 'outbound' ? outbound : inbound
      const hop = l.role === 'outbound' ? shortcuts : null
      servers.push(await serve(l.target, (socket) => { ctx.track(socket); hop?.accepted(socket); handler(socket) }, (err) => {
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
