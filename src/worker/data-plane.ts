import { closeSync } from 'node:fs'
import type { Pod } from '../discovery/model'
import type { Server, Socket } from 'node:net'
import { socketPort } from '../native/listen'
import { compilePolicySet } from '../policy/policy-set'
import { createSnapshot } from '../resources/snapshot'
import { InboundAuthorizer } from '../proxy/authorize'
import { resetRelayed } from '../proxy/finish'
import type { LocalPod, Mesh } from '../proxy/mesh'
import { RouteTable } from '../proxy/route-table'
import { createTunnelInboundHandler } from '../proxy/tunnel-inbound'
import type { NetnsHandle, Platform } from '../agent/platform'
import { createAccessLog } from '../telemetry/access-log'
import { createConnTelemetry, type ConnTelemetry } from '../telemetry/conn-telemetry'
import type { Logger } from '../telemetry/logger'
import { IstioLabeler } from '../telemetry/istio-labels'
import { ProxyMetrics } from '../telemetry/metrics'
import type { RequestTracer } from '../telemetry/request-tracing'
import { createTunnelRefusalLog, REFUSAL_LOG_LIMITS } from '../telemetry/tunnel-refusals'
import { heapFigures } from '../telemetry/heap'
import { liveWorkloadsOf } from '../telemetry/series-retirement'
import { RateBuckets } from '../util/rate-buckets'
import type { DataPathCapture } from './data-path-capture'
import { createNodeMesh } from './node-mesh'
import { type ServedPod, servePod, unservePod } from './pod-serving'
import type { NetnsRef, PodToServe, Publication, Reply, Request, WorkerStats } from './protocol'
import { SvidStore } from './svid-store'
import { WorkerTunnel } from './worker-tunnel'
import { HttpEngine } from '../http/engine'
import type { HttpLimits } from '../http/options'
import { PATH_NORMALIZATION_DEFAULTS, pathNormalizer, type PathNormalizationOptions } from '../http/normalize-path'
import { createDetectCounter, createHttpRefusals } from '../http/refusals'
import { L7Table } from '../l7/table'
import type { L7Deps } from '../proxy/l7-deps'
import { IstioRequestTelemetry } from '../telemetry/request-telemetry'
import { NO_TRACING } from '../telemetry/tracing/no-tracing'
import type { ClusterSnapshot } from '../discovery/model'
import type { Endpoint } from '../discovery/service-index'
import type { RequestBalancerFactory } from '../routing/backends'
import { Router } from '../routing/router'
import { type RouteConfig, RoutingTable } from '../routing/routing-table'
import { createRequestBalancer } from '../balancer/request-factory'
import { l4OutlierLookup } from '../limits/l4-outliers'
import { type RateLimitObject, rateLimitSelector } from '../limits/rate-limit-select'
import { l4Policies } from '../routing/l4-policies'
import { NodeLimits, type NodeLimitsMemory } from '../limits/node-limits'
import { PodRateLimits } from '../limits/pod-rate-limits'

// One data-path worker: its pods' listeners and their connections, its tunnel server and
// pool, and its own copy of everything they read — routes (from the cluster snapshot),
// policies (compiled from the configuration snapshot), certificates — replaced whole
// when the main thread publishes a newer one. It runs in a worker thread
// (src/worker/thread.ts), or on the main thread when the agent has one worker.

export interface DataPlanePlatform {
  /** The main thread's netns, borrowed: the data plane never closes it. */
  netns (ref: NetnsRef): NetnsHandle
  readonly connectInNetns: Platform['connectInNetns']
  readonly capture: DataPathCapture
}

export interface DataPlaneOptions {
  readonly id: number
  readonly node: string
  /** Every line this worker writes carries `worker: id`. */
  readonly log: Logger
  readonly platform: DataPlanePlatform
  readonly sockmap: boolean
  readonly connectTimeoutMs?: number
  /** The port peer nodes' tunnel servers listen on. */
  readonly peerTunnelPort: number
  /** The trust domain of the node's identities; null: no CA (no tunnel, every pod PERMISSIVE). */
  readonly trustDomain: string | null
  /** The node-wide tunnel state the main thread made (src/agent/node-tunnel.ts); null without a CA. */
  readonly tunnel: { readonly admission: SharedArrayBuffer, readonly buffers: SharedArrayBuffer, readonly refusalLog?: SharedArrayBuffer, readonly firstByteTimeoutMs?: number } | null
  /** A configuration source exists: inbound connections are denied until its first snapshot. */
  readonly requireConfig: boolean
  /** It runs in a worker thread of its own (it may fail alone; on the main thread it may not). */
  readonly thread?: boolean
  /** How L7 request paths are normalized at the destination (src/http/normalize-path.ts); default MERGE_SLASHES. */
  readonly pathNormalization?: PathNormalizationOptions
  /** Counts this worker's open connections where the main thread can read them after the worker died ([0]). */
  readonly live?: Int32Array
  /** source_cluster / destination_cluster in Istio's metrics (--cluster-name); default DEFAULT_CLUSTER_NAME. */
  readonly clusterName?: string
  /** The Services' DNS domain in destination_service and span attributes (--cluster-domain); default cluster.local. */
  readonly clusterDomain?: string
  /** Spans and trace headers of the requests this worker handles at L7 (src/telemetry/tracing/); default NO_TRACING. */
  readonly tracer?: RequestTracer
  /** The L7 engine's limits (--http-*, src/http/options.ts); default Envoy's. */
  readonly httpLimits?: HttpLimits
  /** Routing: the per-request balancer of a backend, by its policy (src/balancer/); default round robin. */
  readonly requestBalancers?: RequestBalancerFactory
  /**
   * The node's traffic limits (retry budgets, connection pools, outliers, rate-limit
   * buckets: src/limits/node-limits.ts) in the memory the main thread allocated once for
   * every worker; absent: memory of this data plane's own (tests with one data plane).
   */
  readonly limits?: NodeLimitsMemory
}

export class DataPlane {
  readonly routes = new RouteTable()
  // Istio's metric labels (istio-labels.ts): pod labels from the current cluster snapshot,
  // principals from the node's identities. One labeler for the TCP and the request metrics.
  readonly labeler: IstioLabeler
  readonly metrics: ProxyMetrics
  private readonly requestTelemetry: IstioRequestTelemetry
  readonly authz: InboundAuthorizer
  private readonly svids: SvidStore | null
  private readonly tunnel: WorkerTunnel | null
  private readonly telemetry: ConnTelemetry
  private readonly mesh: Mesh
  private readonly pods = new Map<string, ServedPod>()
  private readonly byIP = new Map<string, LocalPod>()
  private readonly log: Logger
  private accepting = true
  /** Holding (see the 'hold' request): what to serve at 'resume'. */
  private held: { readonly pods: Map<string, PodToServe>, tunnel: Extract<Request, { kind: 'serve-tunnel' }>['target'] | null } | null = null
  /** Sockets of live connections (accepted from pods, or made to destinations). */
  private readonly sockets = new Set<Socket>()
  /** Where L7 applies, from the cluster snapshot in force (replaced whole with each). */
  private l7Table = L7Table.empty()
  /** The HTTP engine: requests on L7 connections, its upstream pools. */
  readonly http: HttpEngine
  private readonly l7: L7Deps
  /** Routes of the cluster and configuration snapshots in force, per request (src/routing/). */
  readonly router: Router
  private cluster: ClusterSnapshot | null = null
  private routeConfig: Partial<RouteConfig> | null = null
  /** This worker's view of the node's limits: the same slots as every other worker's. */
  readonly limits: NodeLimits
  /** The destination pods' rate limits (replace() with each configuration's RateLimits). */
  readonly rateLimits: PodRateLimits

  constructor (private readonly o: DataPlaneOptions) {
    this.log = o.log
    this.limits = new NodeLimits(o.limits ?? NodeLimits.allocate(), Date.now, o.id)
    const rateLimits = this.rateLimits = new PodRateLimits(this.limits)
    this.labeler = new IstioLabeler({
      ...(o.clusterName === undefined ? {} : { clusterName: o.clusterName }),
      ...(o.clusterDomain === undefined ? {} : { clusterDomain: o.clusterDomain }),
      pods: { podByName: (ns, name) => this.routes.index.podByName(ns, name), podByIP: (ip) => this.routes.index.podByIP(ip) },
      principalOf: (pod) => {
        const p = this.routes.index.podByName(pod.namespace, pod.name)
        return p === undefined || this.svids === null ? null : this.svids.spiffeIdOf(p)
      }
    })
    this.metrics = new ProxyMetrics(undefined, this.labeler)
    const base = createConnTelemetry(this.metrics, createAccessLog(o.log))
    const live = o.live
    this.telemetry = live === undefined
      ? base
      : {
          accepted: (r) => { Atomics.add(live, 0, 1); base.accepted(r) },
          opened: (r) => { base.opened(r) },
          closed: (r) => { Atomics.sub(live, 0, 1); base.closed(r) }
        }
    this.authz = new InboundAuthorizer({ log: o.log.child({ component: 'authz' }), metrics: this.metrics, requireConfig: o.requireConfig })
    // --- L7 glue: the request telemetry (Istio's request metrics and access lines) and
    // the request tracer (spans over OTLP: the agent's, from its options; NO_TRACING adds
    // only x-request-id).
    // Request telemetry: Istio's request metrics on this worker's registry (summed by the
    // agent's /metrics) with the TCP metrics' labeler, and one access line per request.
    const requestTelemetry = new IstioRequestTelemetry({ registry: this.metrics.registry, labeler: this.labeler, log: o.log })
    this.requestTelemetry = requestTelemetry
    const requestTracer: RequestTracer = o.tracer ?? NO_TRACING
    // --- end of L7 glue
    this.http = new HttpEngine({ telemetry: requestTelemetry, tracer: requestTracer, refusals: createHttpRefusals(this.metrics.registry), ...(o.httpLimits === undefined ? {} : { limits: o.httpLimits }), ...(o.clusterDomain === undefined ? {} : { clusterDomain: o.clusterDomain }) })
    const detected = createDetectCounter(this.metrics.registry)
    this.router = new Router({ balancers: o.requestBalancers ?? ((policy) => createRequestBalancer<Endpoint>(policy)), limits: this.limits })
    // L7 glue (authorization): request paths normalized at the destination as the agent says (--path-normalization).
    this.l7 = Object.freeze({ table: () => this.l7Table, engine: this.http, normalizePath: pathNormalizer(o.pathNormalization ?? PATH_NORMALIZATION_DEFAULTS), detected, router: this.router, rateLimitOf: (pod: Pod) => rateLimits.of(pod) })
    this.svids = o.trustDomain === null ? null : new SvidStore(o.trustDomain)
    let tunnel: WorkerTunnel | null = null
    this.mesh = createNodeMesh({
      node: o.node,
      identity: this.svids,
      tunnels: { open: async (req) => await (tunnel as WorkerTunnel).pool.open(req) },
      tunnelPort: o.peerTunnelPort,
      routes: this.routes,
      enrolledByIP: (ip) => this.byIP.get(ip),
      log: o.log.child({ component: 'mesh' }),
      authz: this.authz
    })
    if (this.svids !== null && o.tunnel !== null) {
      // One line budget for the node: the bucket lives in memory every worker shares.
      const bucket = o.tunnel.refusalLog === undefined ? undefined : new RateBuckets(new Int32Array(o.tunnel.refusalLog), 0, 1, REFUSAL_LOG_LIMITS)
      const onRefused = createTunnelRefusalLog(o.log.child({ component: 'tunnel' }), this.metrics, bucket === undefined ? {} : { bucket })
      tunnel = new WorkerTunnel({
        shared: o.tunnel,
        svids: this.svids,
        onStream: createTunnelInboundHandler({ routes: this.routes, mesh: this.mesh, identities: this.svids, telemetry: this.telemetry, connectTimeoutMs: o.connectTimeoutMs, l7: this.l7 }),
        onRefused,
        registry: this.metrics.registry,
        ...(o.tunnel.firstByteTimeoutMs === undefined ? {} : { firstByteTimeoutMs: o.tunnel.firstByteTimeoutMs })
      })
    }
    this.tunnel = tunnel
  }

  publish (p: Publication): void {
    switch (p.kind) {
      case 'cluster': {
        this.routes.update(p.snapshot)
        this.cluster = p.snapshot
        this.recompileRoutes()
        // Istio's series of workloads that left: exported once more, then dropped.
        const live = liveWorkloadsOf(p.snapshot.pods)
        this.metrics.retireGoneWorkloads(live)
        this.requestTelemetry.retireGoneWorkloads(live)
        return
      }
      case 'config':
        if (p.snapshot !== null) {
          this.authz.swap(compilePolicySet(createSnapshot(p.snapshot, new Map())))
          // The route objects in force (src/resources/snapshot.ts: httpRoutes, grpcRoutes, virtualServices, destinationRules).
          this.routeConfig = p.snapshot as Partial<RouteConfig>
          if (this.cluster !== null) this.recompileRoutes()
        }
        if (p.rejected !== null) this.authz.rejected(p.rejected)
        return
      case 'svids':
        this.svids?.replace(p.svids)
        this.tunnel?.serve(p.served)
    }
  }

  /**
   * Routes compiled from the cluster and configuration snapshots in force (both
   * publications recompile), and the L7 table with them: a route makes its Service port L7.
   */
  private recompileRoutes (): void {
    const cluster = this.cluster
    if (cluster === null) return
    const table = RoutingTable.build(cluster, this.routeConfig, this.o.clusterDomain)
    this.router.update(table, this.routes.index)
    // L4: a DestinationRule's connection balancer and outlier detection; the destination pods' rate limits.
    const l4 = l4Policies(table, this.routes.index)
    this.routes.setPolicyFor(l4.policyFor)
    this.routes.setOutlierDetection(l4OutlierLookup(this.limits, l4.outliers))
    const services = new Map(cluster.services.map((s) => [`${s.namespace}/${s.name}`, s]))
    this.rateLimits.replace(rateLimitSelector((this.routeConfig as { rateLimits?: RateLimitObject[] } | null)?.rateLimits ?? [], (ns, name) => services.get(`${ns}/${name}`)))
    this.l7Table = L7Table.build(cluster, { node: this.o.node, routeOf: (s, port) => table.engagement(`${s.namespace}/${s.name}`, port.port) })
  }

  async request (r: Request): Promise<Reply> {
    switch (r.kind) {
      case 'serve-pod': return await this.servePod(r.pod)
      case 'unserve-pod':
        await this.unservePod(r.uid)
        return { kind: 'ok' }
      case 'serve-tunnel': {
        if (this.tunnel === null) throw new Error('this agent has no tunnel (no CA)')
        if (this.held !== null) {
          this.held.tunnel = r.target
          return { kind: 'tunnel', port: 'fd' in r.target ? socketPort(r.target.fd) : r.target.port }
        }
        return { kind: 'tunnel', port: await this.tunnel.listen(r.target) }
      }
      case 'hold':
        this.held ??= { pods: new Map(), tunnel: null }
        return { kind: 'ok' }
      case 'resume': {
        const held = this.held
        this.held = null
        if (held === null) return { kind: 'ok' }
        for (const spec of held.pods.values()) await this.servePod(spec)
        if (held.tunnel !== null) await this.tunnel?.listen(held.tunnel)
        return { kind: 'ok' }
      }
      case 'stop-accepting':
        await this.stopAccepting(r.handedOff === true)
        if (r.handedOff === true) this.tunnel?.stopServing()
        return { kind: 'ok' }
      case 'close-connections':
        return { kind: 'closed', connections: await this.closeConnections() }
      case 'sync': return { kind: 'sync', policyGeneration: this.authz.current()?.generation ?? 0 }
      case 'stats': return { kind: 'stats', stats: await this.stats() }
      case 'memory': return { kind: 'memory', worker: this.o.id, heap: heapFigures(r.gc) }
      case 'routing': return { kind: 'routing', worker: this.o.id, backends: this.router.describe() }
      case 'metrics': return { kind: 'metrics', metrics: await this.metrics.registry.getMetricsAsJSON() }
      case 'close':
        await this.close()
        return { kind: 'ok' }
      case 'crash':
        if (this.o.thread !== true) throw new Error('this worker runs on the main thread: it cannot fail alone')
        setImmediate(() => { throw new Error('worker crash drill (POST /debug/workers/crash)') })
        return { kind: 'ok' }
    }
  }

  /** Connections accepted on this worker and not closed (pod listeners and tunnel streams). */
  connections (): number {
    return this.o.live === undefined ? 0 : Atomics.load(this.o.live, 0)
  }

  async stats (): Promise<WorkerStats> {
    let connections = 0
    for (const p of this.pods.values()) for (const s of p.servers) connections += await countConnections(s)
    return {
      worker: this.o.id,
      connections: connections + (this.tunnel?.stats().server.streams ?? 0),
      pods: this.pods.size,
      policyGeneration: this.authz.current()?.generation ?? 0,
      tunnel: this.tunnel?.stats() ?? null
    }
  }

  /**
   * The end of a drain: every connection still here (accepted on a pod listener or
   * carried in a tunnel stream) is reset, and so are its other ends (the relay passes a
   * reset on). Returns how many there were, as `stats()` counts them.
   */
  private async closeConnections (): Promise<number> {
    const { connections } = await this.stats()
    this.resetAll()
    return connections
  }

  /** The worker is failing: every live connection is reset, so no peer takes a cut stream for a complete one. */
  resetAll (): void {
    for (const s of this.sockets) if (!resetRelayed(s)) s.resetAndDestroy()
    this.sockets.clear()
  }

  async close (): Promise<void> {
    await this.stopAccepting()
    await this.tunnel?.close()
    this.http.close()
  }

  private async servePod (spec: PodToServe): Promise<Reply> {
    if (!this.accepting) throw new Error('the worker is draining: it serves no new pod')
    const old = this.pods.get(spec.uid)
    if (old !== undefined || this.held?.pods.has(spec.uid) === true) await this.unservePod(spec.uid)
    if (this.held !== null) {
      this.held.pods.set(spec.uid, spec)
      return { kind: 'served', addresses: spec.listeners.map(() => null) }
    }
    const netns = this.o.platform.netns(spec.netns)
    const served = await servePod(spec, netns, {
      connectInNetns: this.o.platform.connectInNetns,
      capture: this.o.platform.capture,
      routes: this.routes,
      telemetry: this.telemetry,
      log: this.log.child({ component: 'proxy' }),
      connectTimeoutMs: this.o.connectTimeoutMs,
      mesh: this.mesh,
      sockmap: this.o.sockmap,
      metrics: this.metrics,
      l7: this.l7,
      track: (socket) => {
        this.sockets.add(socket)
        socket.once('close', () => { this.sockets.delete(socket) })
      }
    })
    this.pods.set(spec.uid, served)
    const local: LocalPod = Object.freeze({ pod: spec.pod, connector: served.connector, netnsCookie: netns.cookie })
    for (const ip of spec.pod.podIPs) this.byIP.set(ip, local)
    return { kind: 'served', addresses: served.servers.map(addressOf) }
  }

  private async unservePod (uid: string): Promise<void> {
    const pending = this.held?.pods.get(uid)
    if (pending !== undefined) {
      // Never served: its duplicates are still ours to close.
      this.held?.pods.delete(uid)
      for (const l of pending.listeners) if ('fd' in l.target) { try { closeSync(l.target.fd) } catch {} }
    }
    const p = this.pods.get(uid)
    if (p === undefined) return
    this.pods.delete(uid)
    for (const ip of p.spec.pod.podIPs) if (this.byIP.get(ip)?.pod.uid === uid) this.byIP.delete(ip)
    await unservePod(p)
  }

  private async stopAccepting (handedOff = false): Promise<void> {
    this.accepting = false
    // Draining: no pod counts as served here any more, so new tunnel streams to them are
    // refused. Handed off: streams still arriving on our sessions are served.
    if (!handedOff) this.byIP.clear()
    await Promise.all([...this.pods.values()].map(unservePod))
  }
}

function addressOf (s: Server): { address: string, port: number } | null {
  const a = s.address()
  return a === null || typeof a === 'string' ? null : { address: a.address, port: a.port }
}

async function countConnections (s: Server): Promise<number> {
  return await new Promise<number>((resolve) => { s.getConnections((err, n) => { resolve(err === null ? n : 0) }) })
}
