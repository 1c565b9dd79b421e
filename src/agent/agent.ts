import '../balancer'
import { PORTS } from '../config/env'
import type { DiscoverySource } from '../discovery'
import type { ClusterSnapshot } from '../discovery/model'
import type { PodLocator } from '../discovery/pod-locator'
import type { PodEventRecorder } from '../kubernetes/events'
import type { FerryError } from '../errors'
import { compilePolicySet } from '../policy/policy-set'
import { InboundAuthorizer } from '../proxy/authorize'
import { createTunnelInboundHandler } from '../proxy/tunnel-inbound'
import { formatIssue } from '../resources/issues'
import { loadSavedConfig, savedConfigOf, SavedConfigWriter } from '../resources/saved-config'
import type { ConfigSnapshot } from '../resources/snapshot'
import { RouteTable } from '../proxy/route-table'
import { createAccessLog } from '../telemetry/access-log'
import { createConnTelemetry } from '../telemetry/conn-telemetry'
import { droppedLogLines, type Logger } from '../telemetry/logger'
import { ProxyMetrics } from '../telemetry/metrics'
import { registerProbeMetrics } from '../telemetry/probe-metrics'
import { createTunnelRefusalLog } from '../telemetry/tunnel-refusals'
import { type AdminAuth, createAdminAuth } from './admin-auth'
import { type AdminServers, startAdminServers } from './admin-server'
import type { AgentCni } from './agent-cni'
import { openConfigSource, type PolicyConfigSource } from './config-source'
import { PodEnroller } from './enroller'
import { type AgentDiscovery, agentDiscovery } from './discovery-mode'
import type { NodeIdentities } from './identities'
import { createNodeMesh } from './node-mesh'
import type { NodeTunnel } from './node-tunnel'
import { peerNodeAddresses } from './peer-nodes'
import { type AgentOptions, IDENTITY_DEFAULTS } from './options'
import type { CaptureHandle, Platform } from './platform'
import { kubeletCgroupOf, probeCountsOf, startProbeAdmission } from './probe-admission'

// The per-node agent: discovery → routes + enrollment → proxy, with admin endpoints;
// with a CA, a certificate for each identity of the enrolled pods (identities.ts) and
// the mTLS tunnel between nodes (node-tunnel.ts): a server on :15008 and a pool of
// sessions to peer nodes. Runs in the node's network namespace; its sockets belong to
// its own cgroup, so capture never rewrites them. What only a CA needs (identities:
// gRPC, protobuf.js, x509; the tunnel's server and pool) is loaded only with a CA, and
// the ferry-cni plugin's side (agent-cni.ts) only with --cni-socket.

/** The Event reason when a pod cannot be enrolled (`kubectl describe pod` shows it). */
export const ENROLL_FAILED_REASON = 'FerryEnrollmentFailed'

/** How often a drain re-counts the live tunnel streams (pod listeners tell when they are drained). */
const DRAIN_POLL_MS = 100

export interface AgentDeps {
  readonly platform: Platform
  readonly log: Logger
  /** Defaults to what the options select (src/agent/discovery-mode.ts): the `file` source on --cluster-file, or `kubernetes`. */
  readonly source?: DiscoverySource
  /** Defaults to what the options select: the lab-annotation locator, or `kubelet` with --kubernetes. */
  readonly locator?: PodLocator
  /** Defaults to what the options select: Kubernetes Events with --kubernetes, else none. */
  readonly events?: PodEventRecorder | null
  readonly retry?: { initialMs: number, maxMs: number }
  readonly connectTimeoutMs?: number
  /** Who may read /debug/*; defaults to what the options select (src/agent/admin-auth.ts). */
  readonly adminAuth?: AdminAuth
  /** The port peer nodes' tunnel servers listen on (default PORTS.tunnel; tests run several agents on one host). */
  readonly peerTunnelPort?: number
}

export class Agent {
  private constructor (
    readonly options: AgentOptions,
    readonly metrics: ProxyMetrics,
    readonly routes: RouteTable,
    readonly enroller: PodEnroller,
    readonly admin: AdminServers,
    /** Pods' identities and certificates; null without a CA (--ca-*). */
    readonly identity: NodeIdentities | null,
    /** The mTLS tunnel's server and pool; null without a CA. */
    readonly tunnel: NodeTunnel | null,
    private readonly capture: CaptureHandle,
    private readonly source: DiscoverySource,
    private readonly log: Logger,
    /** Policies in force and the live inbound connections they are checked against. */
    readonly authz: InboundAuthorizer,
    /** --config-dir's watcher or the controller's configuration stream; null without either (no policies: allow all). */
    readonly config: PolicyConfigSource | null,
    /** The ferry-cni plugin's agent side; null without --cni-socket. */
    private readonly cni: AgentCni | null,
    /** Where each snapshot is saved (--config-cache); null: not saved. */
    private readonly configCache: SavedConfigWriter | null
  ) {}

  static async start (options: AgentOptions, deps: AgentDeps): Promise<Agent> {
    const log = deps.log
    // The source and locator the options select, made (and their host paths checked) before anything starts.
    const selected = deps.source === undefined || deps.locator === undefined ? agentDiscovery(options, log.child({ component: 'discovery' })) : null
    // The kubelet's cgroup (--kubelet-cgroup), found before anything starts: a wrong one fails the start.
    const kubeletCgroup = kubeletCgroupOf(options)
    const metrics = new ProxyMetrics()
    metrics.watchLogDrops(() => droppedLogLines(log))
    const routes = new RouteTable()
    const telemetry = createConnTelemetry(metrics, createAccessLog(log))
    const identities = options.identity === null
      ? null
      : (require('./identities') as typeof import('./identities')).openNodeIdentities(options.identity, { log: log.child({ component: 'identity' }), registry: metrics.registry })
    if (identities === null) log.warn({ node: options.node }, 'no CA configured (--ca-*): pod traffic between nodes is plaintext, no tunnel, and every pod accepts plaintext (PERMISSIVE)')
    // Policies: each snapshot (of --config-dir, or from the controller's stream, admitted
    // object by object) is compiled and swapped in whole, and saved (--config-cache); the
    // first load completes (or the stream times out, or the saved configuration is in
    // force) before any connection is proxied. An agent that never had a configuration
    // denies inbound connections and is not ready until its first (fail closed); with no
    // config source at all no policy exists: everything is allowed.
    const configLog = log.child({ component: 'config' })
    const cache = options.configCache === null ? null : new SavedConfigWriter(options.configCache, configLog)
    let opened: Awaited<ReturnType<typeof openConfigSource>>
    try {
      const saved = options.configCache === null ? null : await loadSavedConfig(options.configCache, configLog)
      opened = await openConfigSource({ configDir: options.configDir, fromController: options.configFromController, identity: options.identity, saved },
        { log: configLog, registry: metrics.registry })
    } catch (err) {
      identities?.close()
      throw err
    }
    const config = opened?.source ?? null
    const authz = new InboundAuthorizer({ log: log.child({ component: 'authz' }), metrics, requireConfig: config !== null })
    if (config !== null) {
      const onSnapshot = (s: ConfigSnapshot): void => {
        authz.swap(compilePolicySet(s))
        cache?.save(savedConfigOf(s, s.objects.filter((o) => o.reportedBy !== undefined), { generation: s.generation }))
      }
      await config.start({ onSnapshot, onRejected: (err) => { authz.rejected(err.issues.map(formatIssue)) } })
      if (config.current() === null) log.warn({ config: opened?.origin }, 'no valid configuration yet: inbound connections are denied and the agent is not ready until one arrives')
    }
    let capture: CaptureHandle
    try {
      capture = await deps.platform.openCapture({ pinRoot: options.pinRoot, log })
    } catch (err) {
      config?.close()
      identities?.close()
      throw err
    }
    try {
      startProbeAdmission(capture, kubeletCgroup, log.child({ component: 'capture' }))
    } catch (err) {
      capture.close()
      config?.close()
      identities?.close()
      throw err
    }
    // The mesh and the tunnel need the enroller (which pods are here) and the enroller's
    // handlers need the mesh: the enroller is bound below, before any connection exists.
    let enroller: PodEnroller | null = null
    const tunnelLog = log.child({ component: 'tunnel' })
    const onRefused = createTunnelRefusalLog(tunnelLog, metrics)
    let tunnel: NodeTunnel | null = null
    const mesh = createNodeMesh({
      node: options.node,
      identity: identities,
      tunnels: { open: async (req) => await (tunnel as NodeTunnel).pool.open(req) },
      tunnelPort: deps.peerTunnelPort ?? PORTS.tunnel,
      routes,
      enrolledByIP: (ip) => enroller?.enrolledByIP(ip),
      log: log.child({ component: 'mesh' }),
      authz
    })
    if (identities !== null) {
      const { NodeTunnel } = require('./node-tunnel') as typeof import('./node-tunnel')
      tunnel = new NodeTunnel({
        identity: identities,
        onStream: createTunnelInboundHandler({ routes, mesh, identities, telemetry, connectTimeoutMs: deps.connectTimeoutMs }),
        onRefused,
        log: tunnelLog,
        registry: metrics.registry,
        ...(deps.platform.openTunnelSyn === undefined ? {} : { openSyn: deps.platform.openTunnelSyn })
      })
      const t = tunnel
      // The SYNs the kernel dropped are refusals too (they never reach onRefused).
      metrics.watchRefusals({ side: 'server', stage: 'syn', reason: 'rate-limit' }, () => t.synCounts()?.dropped ?? null)
    }
    const nodeTunnel = tunnel
    const events = deps.events !== undefined ? deps.events : (selected?.events ?? null)
    enroller = new PodEnroller({
      node: options.node,
      locator: deps.locator ?? (selected as AgentDiscovery).locator,
      platform: deps.platform,
      capture,
      routes,
      telemetry,
      metrics,
      log: log.child({ component: 'enroll' }),
      retry: deps.retry,
      connectTimeoutMs: deps.connectTimeoutMs,
      identity: identities,
      mesh,
      sockmap: options.sockmap,
      onFailure: (pod, err) => { events?.record(pod, 'Warning', ENROLL_FAILED_REASON, err.message) },
      ...(identities === null
        ? {}
        : {
            onEnrolledChange: (pods, passDone) => {
              identities.sync(pods, { removeOthers: passDone })
              nodeTunnel?.sync(pods, { removeOthers: passDone })
            }
          })
    })
    const podEnroller = enroller
    registerProbeMetrics(metrics.registry, () => probeCountsOf(capture, podEnroller.enrolledPods()))
    // Started below, once the agent exists; until then it has no snapshot (current() is null).
    const source = deps.source ?? (selected as AgentDiscovery).source
    let admin: AdminServers | null = null
    let cni: AgentCni | null = null
    try {
      if (tunnel !== null) await tunnel.listen(options.identity?.tunnelPort ?? PORTS.tunnel)
      admin = await startAdminServers({ adminPort: options.adminPort, readyPort: options.readyPort, metrics, enroller, identities, tunnel, log, authz, cluster: () => source.current(), node: options.node, trustDomain: options.identity?.trustDomain ?? IDENTITY_DEFAULTS.trustDomain, auth: deps.adminAuth ?? agentAdminAuth(options) })
      if (options.cni !== null) {
        const { AgentCni } = require('./agent-cni') as typeof import('./agent-cni')
        cni = await AgentCni.start({ options: options.cni, node: options.node, kubernetes: options.kubernetes, enroller, current: () => source.current(), log: log.child({ component: 'cni' }), registry: metrics.registry })
      }
    } catch (err) {
      await admin?.close()
      await tunnel?.close()
      capture.close()
      config?.close()
      identities?.close()
      throw err
    }
    const agent = new Agent(options, metrics, routes, enroller, admin, identities, tunnel, capture, source, log, authz, config, cni, cache)
    source.start({
      onSnapshot: (s) => { agent.onSnapshot(s) },
      onError: (err) => { agent.onDiscoveryError(err) }
    })
    const ca = options.identity === null ? null : { address: options.identity.caAddress, trustDomain: options.identity.trustDomain, certTtlMs: options.identity.certTtlMs }
    log.info({ node: options.node, clusterFile: options.clusterFile, kubernetes: options.kubernetes, pinRoot: options.pinRoot, adminPort: admin.adminPort, readyPort: admin.readyPort, tunnelPort: tunnel?.stats().port ?? null, ca, config: opened?.origin ?? null, cniSocket: options.cni?.entry.socket ?? null }, 'agent started')
    return agent
  }

  /**
   * SIGTERM: readiness answers 503 from now on, every pod listener is closed (new
   * connections are refused; capture keeps steering, as during a restart), new tunnel
   * streams to this node's pods are refused, and the live connections — accepted on pod
   * listeners or carried in tunnel streams — get up to `graceMs` to finish. Returns how
   * many were still open when it stopped waiting; close() then ends them.
   */
  async drain (graceMs: number = this.options.drainGraceMs): Promise<number> {
    const open = async (): Promise<number> => await this.enroller.openConnections() + (this.tunnel?.stats().server.streams ?? 0)
    const before = await open()
    // Pods starting now wait in their CNI ADD for the next agent (the plugin retries until its timeout).
    await this.cni?.stopServing()
    await this.enroller.stopAccepting()
    this.log.info({ connections: before, graceMs }, 'draining: not ready, no new connections; waiting for live connections to finish')
    const deadline = Date.now() + graceMs
    let left = await open()
    while (left > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(DRAIN_POLL_MS, Math.max(0, deadline - Date.now())))
        void this.enroller.drained().then(() => { if ((this.tunnel?.stats().server.streams ?? 0) === 0) { clearTimeout(timer); resolve() } })
      })
      left = await open()
    }
    if (left === 0) this.log.info({ connections: before }, 'drained: no live connections left')
    else this.log.warn({ connections: left, graceMs }, 'drain grace period over: closing the connections left')
    return left
  }

  /** Stops serving: discovery, listeners, the tunnel, admin servers; closes capture (its pins stay, so capture keeps working for the next agent). */
  async close (): Promise<void> {
    this.source.close()
    this.config?.close()
    await this.configCache?.flushed()
    await this.cni?.close()
    await this.enroller.close()
    await this.tunnel?.close()
    this.identity?.close()
    try { this.capture.close() } catch (err) { this.log.error({ err }, 'capture close failed') }
    await this.admin.close()
    this.log.info('agent stopped')
  }

  private onSnapshot (s: ClusterSnapshot): void {
    this.routes.update(s)
    this.tunnel?.setPeerNodes(peerNodeAddresses(s, this.options.node))
    this.log.info({ generation: s.generation, pods: s.pods.length, services: s.services.length }, 'cluster snapshot')
    this.enroller.apply(s)
    this.cni?.onSnapshot(s)
  }

  private onDiscoveryError (err: FerryError): void {
    this.log.error({ code: err.code, errno: err.errno, err: err.message, generation: this.routes.index.generation }, 'cluster file rejected; keeping the last good snapshot')
  }
}

/** --admin-token-file, and with --kubernetes the API server's reviews (the client loaded on the first debug request). */
function agentAdminAuth (options: AgentOptions): AdminAuth {
  const k = options.kubernetes
  return createAdminAuth({
    tokenFile: options.adminTokenFile,
    node: options.node,
    kubernetes: k === null
      ? null
      : async () => {
        const source = k.kubeconfig === null ? {} : { file: k.kubeconfig }
        const { kubernetesTokenReviewer } = await import('../kubernetes/token-review.js')
        const { kubernetesAccessReviewer } = await import('../kubernetes/access-review.js')
        return { review: await kubernetesTokenReviewer(source), access: await kubernetesAccessReviewer(source) }
      }
  })
}
