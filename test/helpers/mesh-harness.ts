import { connect, type Server, type Socket } from 'node:net'
import { inboundMode } from '../../src/discovery/mesh-policy'
import type { Pod } from '../../src/discovery/model'
import type { Svid } from '../../src/identity/svid'
import type { InboundAuthorizer } from '../../src/proxy/authorize'
import { type Connector, createInboundHandler, createOutboundHandler, createTunnelInboundHandler, type LocalPod, type Mesh, type PodIdentities, type RouteTable, serve } from '../../src/proxy'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import type { Logger } from '../../src/telemetry/logger'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { createTunnelRefusalLog } from '../../src/telemetry/tunnel-refusals'
import { sniOf, TunnelPool, TunnelServer } from '../../src/tunnel'
import { podObj } from '../discovery/fixture'
import { captureLog, type Teardown } from '../proxy/harness'
import { waitFor } from './wait'

// Two "nodes" of one process on loopback, wired as the agent wires them (src/agent/
// node-mesh.ts, node-tunnel.ts) but without an agent: each node has its own metrics, log,
// identities and Mesh; n1 runs outbound/inbound handlers and a TunnelPool, n2 runs a real
// TunnelServer whose streams go to the proxy's tunnel-inbound handler. Pods are addresses
// in 127/8 (the kernel answers all of them on lo), apps are loopback servers, and a pod's
// "netns connector" connects plainly.

export const TRUST_DOMAIN = 'cluster.local'
export const idOf = (ns: string, sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`

/** A pod object with status.hostIP(s), as the lab writes them. */
export function podOn (spec: Parameters<typeof podObj>[0] & { hostIP?: string }): Record<string, unknown> {
  const obj = podObj(spec) as { status: Record<string, unknown> }
  if (spec.hostIP !== undefined) obj.status = { ...obj.status, hostIP: spec.hostIP, hostIPs: [{ ip: spec.hostIP }] }
  return obj
}

/** Identities as the agent's NodeIdentities answers them; `svids` can be changed by the test (rotation, removal). */
export function identities (svids: Map<string, Svid>): PodIdentities {
  return {
    spiffeIdOf: (pod) => idOf(pod.namespace, pod.serviceAccountName),
    svidFor: (id) => svids.get(id) ?? null
  }
}

export const plainConnector: Connector = (req) => connect({ host: req.host, port: req.port, family: req.family, allowHalfOpen: true })

export interface TestNode {
  readonly name: string
  readonly log: Logger
  readonly metrics: ProxyMetrics
  readonly lines: any[]
  readonly mesh: Mesh
  readonly svids: Map<string, Svid>
  /** Connector calls made for local pods: "host:port". */
  readonly localConnects: string[]
  /** What mesh.localPod answers; tests may replace it. */
  localPod: (address: string) => LocalPod | null
  /** What mesh.tunnels is (with a CA); set it to poolOf(t, node) so that refusals log on this node. */
  tunnels: TunnelPool | null
  access: () => any[]
  refusals: () => any[]
}

export function testNode (name: string, routes: RouteTable, o: { svids?: Svid[], local?: string[], tunnelPort?: () => number, noCa?: boolean, authz?: InboundAuthorizer } = {}): TestNode {
  const { log, lines } = captureLog()
  const metrics = new ProxyMetrics()
  const svids = new Map((o.svids ?? []).map((s) => [s.spiffeId.uri, s]))
  const ids = o.noCa === true ? null : identities(svids)
  const localConnects: string[] = []
  const local = new Set(o.local ?? [])
  const node: TestNode = {
    name,
    log,
    metrics,
    lines,
    svids,
    localConnects,
    tunnels: null,
    localPod (address: string): LocalPod | null {
      if (!local.has(address)) return null
      const pod = routes.index.podByIP(address) as Pod
      return { pod, connector: (req) => { localConnects.push(`${req.host}:${req.port}`); return plainConnector(req) } }
    },
    mesh: {
      node: name,
      identities: ids,
      get tunnels () { return ids === null ? null : node.tunnels },
      get tunnelPort () { return o.tunnelPort?.() ?? 15008 },
      localPod: (address: string) => node.localPod(address),
      inboundMode: (pod) => ids === null ? { mode: 'PERMISSIVE', scope: 'default' } : inboundMode(pod, routes.index.namespace(pod.namespace)),
      authz: o.authz
    },
    access: () => lines.filter((l) => l.msg === 'access'),
    refusals: () => lines.filter((l) => l.msg === 'tunnel refused')
  }
  return node
}

function telemetryOf (n: TestNode): ReturnType<typeof createConnTelemetry> {
  return createConnTelemetry(n.metrics, createAccessLog(n.log))
}

/** A pool whose refusals are logged and counted on `n`. */
export function poolOf (t: Teardown, n: TestNode): TunnelPool {
  const pool = new TunnelPool({ onRefused: createTunnelRefusalLog(n.log, n.metrics) })
  t.teardown(async () => { await pool.close(200) })
  return pool
}

/** n's tunnel server on 127.0.0.1:0, presenting its identities by SNI (or `present` whatever is asked). */
export async function tunnelServerOf (t: Teardown, n: TestNode, routes: RouteTable, o: { present?: Svid } = {}): Promise<number> {
  const bySni = (): Map<string, Svid> => new Map([...n.svids.values()].map((s) => [sniOf(s.spiffeId), s]))
  const server = new TunnelServer({
    selectSvid: (sni) => o.present ?? bySni().get(sni) ?? null,
    onStream: createTunnelInboundHandler({ routes, mesh: n.mesh, identities: n.mesh.identities as PodIdentities, telemetry: telemetryOf(n), connectTimeoutMs: 2000 }),
    onRefused: createTunnelRefusalLog(n.log, n.metrics)
  })
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await server.close(200) })
  return port
}

/** n's outbound listener for `pod` (127.0.0.1:0); every connection's original destination is `dst()`. */
export async function outboundOf (t: Teardown, n: TestNode, routes: RouteTable, pod: Pod, dst: () => { address: string, port: number }): Promise<number> {
  const handler = createOutboundHandler({ pod, originalDst: () => dst(), routes, connector: plainConnector, telemetry: telemetryOf(n), mesh: n.mesh, connectTimeoutMs: 2000 })
  return await listenOn(t, handler, '127.0.0.1')
}

/** n's plaintext inbound listener for `pod`, on `host`:0 (the pod's IP); it connects to the app at appPort. */
export async function inboundOf (t: Teardown, n: TestNode, routes: RouteTable, pod: Pod, host: string, appPort: number): Promise<number> {
  const handler = createInboundHandler({ pod, routes, connector: (req) => plainConnector({ ...req, port: appPort }), telemetry: telemetryOf(n), mesh: n.mesh, connectTimeoutMs: 2000 })
  return await listenOn(t, handler, host)
}

async function listenOn (t: Teardown, handler: (s: Socket) => void, host: string): Promise<number> {
  const server: Server = await serve({ host, port: 0 }, handler, (err) => { throw err })
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return (server.address() as { port: number }).port
}

export async function linesOf (n: TestNode, what: (l: any) => boolean, count = 1, ms = 3000): Promise<any[]> {
  await waitFor(() => n.lines.filter(what).length >= count, { timeoutMs: ms, what: `${count} line(s) on ${n.name}` })
  return n.lines.filter(what)
}
