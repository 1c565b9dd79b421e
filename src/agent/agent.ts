import '../balancer'
import { PORTS } from '../config/env'
import type { DiscoverySource } from '../discovery'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import type { PodLocator } from '../discovery/pod-locator'
import type { PodEventRecorder } from '../kubernetes/events'
import type { FerryError } from '../errors'
import { L7Warnings, l7TableFor } from '../l7'
import { Netns } from '../native'
import { compilePolicySet } from '../policy/policy-set'
import { InboundAuthorizer } from '../proxy/authorize'
import { formatIssue } from '../resources/issues'
import { loadSavedConfig, savedConfigOf, SavedConfigWriter } from '../resources/saved-config'
import type { ConfigSnapshot } from '../resources/snapshot'
import { RouteTable } from '../proxy/route-table'
import { droppedLogLines, type Logger } from '../telemetry/logger'
import { ProxyMetrics } from '../telemetry/metrics'
import { registerProbeMetrics } from '../telemetry/probe-metrics'
import { registerSockmapMetrics } from '../telemetry/sockmap-metrics'
import { requestTracerFor, spanExportFor } from '../telemetry/tracing'
import type { SpanExport } from '../telemetry/tracing/span-export'
import type { NetnsRef, Request } from '../worker/protocol'
import { type AdminAuth, createAdminAuth } from './admin-auth'
import { type AdminServers, startAdminServers } from './admin-server'
import type { AgentCni } from './agent-cni'
import { openConfigSource, type PolicyConfigSource } from './config-source'
import { PodEnroller } from './enroller'
import { type AgentDiscovery, agentDiscovery } from './discovery-mode'
import type { NodeIdentities } from './identities'
import { SvidPublisher } from './svid-publisher'
import type { NodeTunnel } from './node-tunnel'
import { peerNodeAddresses } from './peer-nodes'
import { type AgentOptions, IDENTITY_DEFAULTS } from './options'
import type { CaptureHandle, NetnsHandle, Platform } from './platform'
import { handoffListeners, serveAgain } from './pod-enrollment'
import { HandoffServer, takeOver, type Takeover } from '../handoff'
import { kubeletCgroupOf, probeCountsOf, startProbeAdmission } from './probe-admission'
import { InlineWorker, ThreadWorker, type WorkerHost, WorkerSet, type ThreadTemplate } from './workers'
import { NodeLimits } from '../limits/node-limits'

// The per-node agent, Envoy's threading model: the main thread owns discovery, the
// configuration, certificates, enrollment, capture and the admin server; the data path
// runs on `--workers` workers (src/agent/workers.ts, src/worker/), each with its own
// listeners, connections, tunnel server and pool, reading the snapshots the main thread
// publishes. With one worker (--workers 1, and the test platforms) the data plane runs
// on the main thread. With a CA: a certificate for each identity of the enrolled pods
// (identities.ts) and the mTLS tunnel between nodes (node-tunnel.ts, the workers'
// servers and pools). Runs in the node's network namespace; its sockets belong to its
// own cgroup, so capture never rewrites them. What only a CA needs (identities: gRPC,
// protobuf.js, x509; the tunnel) is loaded only with a CA, and the ferry-cni plugin's
// side (agent-cni.ts) only with --cni-socket.

/** The Event reason when a pod cannot be enrolled (`kubectl describe pod` shows it). */
export const ENROLL_FAILED_REASON = 'FerryEnrollmentFailed'

/** Logged when a drain begins (with `connections` and `graceMs`): the grace period starts. */
export const DRAINING_MESSAGE = 'draining: not ready, no new connections; waiting for live connections to finish'
/** Logged when the grace period ran out, with `connections`: how many were still open and were closed (reset). */
export const DRAIN_CLOSED_MESSAGE = 'drain grace period over: closed the connections left'
/** How often a drain re-counts the live connections. */
const DRAIN_POLL_MS = 100
/** How long taking the sockets over from the agent before us may take. */
const TAKEOVER_TIMEOUT_MS = 10_000
/** How long a new agent may take to be ready before it gives a takeover up (the agent before us serves on). */
const TAKEOVER_READY_TIMEOUT_MS = 120_000

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
  /**
   * Where worker threads write their lines (each thread has its own writer): given, and
   * with --workers above 1 on a platform whose capture hands its maps to threads, the data
   * path runs on worker threads; absent (tests that read the agent's logger), on the main thread.
   */
  readonly workerLog?: { readonly destination: number | string, readonly name: string }
}

export class Agent {
  /** A new agent is taking our sockets over: readiness answers 503. */
  private lent = false
  /** Hands our sockets to the agent after us (--handoff-socket); null: none, or not yet. */
  private handoff: HandoffServer | null = null
  private closing = false
  /** Invalid ferry.dev/l7 values, logged once each. */
  private readonly l7Warnings: L7Warnings

  private constructor (
    readonly options: AgentOptions,
    /** The main thread's metrics; `/metrics` adds the workers' (scrape()). */
    readonly metrics: { readonly registry: ProxyMetrics['registry'], text: () => Promise<string> },
    readonly routes: RouteTable,
    readonly enroller: PodEnroller,
    readonly admin: AdminServers,
    /** Pods' identities and certificates; null without a CA (--ca-*). */
    readonly identity: NodeIdentities | null,
    /** The tunnel's node-wide part; null without a CA. */
    readonly tunnel: NodeTunnel | null,
    readonly workers: WorkerSet,
    private readonly capture: CaptureHandle,
    private readonly source: DiscoverySource,
    private readonly log: Logger,
    /** Policies in force on every worker (the main thread's copy answers /debug/config and readiness). */
    readonly authz: InboundAuthorizer,
    /** --config-dir's watcher or the controller's configuration stream; null without either (no policies: allow all). */
    readonly config: PolicyConfigSource | null,
    /** The ferry-cni plugin's agent side; null without --cni-socket. */
    private readonly cni: AgentCni | null,
    /** Where each snapshot is saved (--config-cache); null: not saved. */
    private readonly configCache: SavedConfigWriter | null,
    /** The one span exporter of this agent (every worker's spans reach it); null: tracing off. */
    private readonly spans: SpanExport | null
  ) {
    this.l7Warnings = new L7Warnings(log)
  }

  static async start (options: AgentOptions, deps: AgentDeps): Promise<Agent> {
    const log = deps.log
    // Undone in reverse order if a later step fails.
    const undo: Array<() => unknown> = []
    const unwind = async (): Promise<void> => {
      for (const f of undo.reverse()) { try { await f() } catch (err) { log.error({ err }, 'cleanup after a failed start failed') } }
    }
    try {
      return await Agent.build(options, deps, undo)
    } catch (err) {
      await unwind()
      throw err
    }
  }

  private static async build (options: AgentOptions, deps: AgentDeps, undo: Array<() => unknown>): Promise<Agent> {
    const log = deps.log
    // The agent before us, if one serves on this node (a rolling update): we take its
    // listening sockets over before binding anything (src/handoff), serve them beside it
    // until we are ready, then tell it to stop accepting (settleHandoff).
    const takeover = options.handoffSocket === null ? null : await takeOver(options.handoffSocket, { timeoutMs: TAKEOVER_TIMEOUT_MS })
    if (takeover !== null) {
      log.info({ from: takeover.from, listeners: takeover.listeners.size }, 'took the listening sockets of the agent before us over; serving beside it until ready')
      undo.push(() => { takeover.abandon() })
    }
    const adopt = (key: string): number | undefined => takeover?.adopt(key)
    // The source and locator the options select, made (and their host paths checked) before anything starts.
    const selected = deps.source === undefined || deps.locator === undefined ? agentDiscovery(options, log.child({ component: 'discovery' })) : null
    // The kubelet's cgroup (--kubelet-cgroup), found before anything starts: a wrong one fails the start.
    const kubeletCgroup = kubeletCgroupOf(options)
    const metrics = new ProxyMetrics()
    metrics.watchLogDrops(() => droppedLogLines(log))
    const routes = new RouteTable()
    const identities = options.identity === null
      ? null
      : (require('./identities') as typeof import('./identities')).openNodeIdentities(options.identity, { log: log.child({ component: 'identity' }), registry: metrics.registry })
    if (identities !== null) undo.push(() => { identities.close() })
    else log.warn({ node: options.node }, 'no CA configured (--ca-*): pod traffic between nodes is plaintext, no tunnel, and every pod accepts plaintext (PERMISSIVE)')
    const configLog = log.child({ component: 'config' })
    const cache = options.configCache === null ? null : new SavedConfigWriter(options.configCache, configLog)
    const saved = options.configCache === null ? null : await loadSavedConfig(options.configCache, configLog)
    const opened = await openConfigSource({ configDir: options.configDir, fromController: options.configFromController, identity: options.identity, saved },
      { log: configLog, registry: metrics.registry })
    const config = opened?.source ?? null
    if (config !== null) undo.push(() => { config.close() })
    const authz = new InboundAuthorizer({ log: log.child({ component: 'authz' }), metrics, requireConfig: config !== null })
    const capture = await deps.platform.openCapture({ pinRoot: options.pinRoot, log })
    undo.push(() => { capture.close() })
    startProbeAdmission(capture, kubeletCgroup, log.child({ component: 'capture' }))

    let tunnel: NodeTunnel | null = null
    if (identities !== null) {
      const { NodeTunnel } = require('./node-tunnel') as typeof import('./node-tunnel')
      tunnel = new NodeTunnel({
        log: log.child({ component: 'tunnel' }),
        registry: metrics.registry,
        ...(deps.platform.openTunnelSyn === undefined ? {} : { openSyn: deps.platform.openTunnelSyn })
      })
      const t = tunnel
      undo.push(() => { t.close() })
      // The SYNs the kernel dropped are refusals too (the workers count the rest).
      metrics.watchRefusals({ side: 'server', stage: 'syn', reason: 'rate-limit' }, () => t.synCounts()?.dropped ?? null)
    }
    const nodeTunnel = tunnel

    // Tracing: one exporter for the whole agent, on the main thread (docs/tracing.md).
    const spans = spanExportFor(options.tracing, options.node, metrics.registry)
    if (spans !== null) undo.push(async () => { await spans.shutdown() })

    // The workers. A restarted one is given its pods and tunnel socket again (replay).
    let enroller: PodEnroller | null = null
    const mapFds = capture.dataPathMaps?.()
    const threaded = options.workers > 1 && deps.workerLog !== undefined && mapFds !== undefined
    if (options.workers > 1 && !threaded) log.warn({ workers: options.workers }, 'this platform runs the data path on the main thread: one worker')
    // The node's traffic limits (src/limits/node-limits.ts): the main thread's view of the memory every worker shares.
    const nodeLimits = new NodeLimits(NodeLimits.allocate())
    const common = {
      node: options.node,
      sockmap: options.sockmap,
      ...(deps.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: deps.connectTimeoutMs }),
      peerTunnelPort: deps.peerTunnelPort ?? PORTS.tunnel,
      trustDomain: identities?.trustDomain ?? null,
      tunnel: nodeTunnel === null ? null : { ...nodeTunnel.shared, ...(nodeTunnel.firstByteTimeoutMs === undefined ? {} : { firstByteTimeoutMs: nodeTunnel.firstByteTimeoutMs }) },
      requireConfig: config !== null,
      clusterName: options.clusterName,
      clusterDomain: options.clusterDomain,
      tracing: options.tracing,
      pathNormalization: options.pathNormalization,
      httpLimits: options.httpLimits,
      // The node's traffic limits: one block of shared memory for every worker, restarted ones included.
      limits: nodeLimits.memory
    }
    const spawn = threaded
      ? async (id: number, onExit: (code: number) => void): Promise<WorkerHost> => {
        const template: ThreadTemplate = { ...common, logLevel: options.logLevel, logDestination: (deps.workerLog as { destination: number | string }).destination, logName: (deps.workerLog as { name: string }).name, maps: mapFds }
        const w = new ThreadWorker(id, template, onExit, spans === null
          ? undefined
          : (b) => {
              for (const s of b.spans) spans.submit(s)
              spans.droppedElsewhere(b.dropped)
            })
        await w.ready
        return w
      }
      : async (): Promise<WorkerHost> => {
        // The data path's code (proxy, tunnel server and pool) loads in the main thread only when it runs there.
        const { DataPlane } = require('../worker/data-plane') as typeof import('../worker/data-plane')
        return new InlineWorker(new DataPlane({
          ...common,
          id: 0,
          log,
          platform: { netns: borrowNetns(deps.platform), connectInNetns: deps.platform.connectInNetns, capture },
          live: new Int32Array(new SharedArrayBuffer(4)),
          tracer: requestTracerFor(options.tracing, options.node, spans === null ? () => {} : spans.submit)
        }))
      }
    const workers = await WorkerSet.start({
      count: threaded ? options.workers : 1,
      spawn,
      onLive: (ids) => {
        capture.setLiveWorkers(ids)
        nodeTunnel?.setLiveWorkers(ids)
      },
      replay: (id) => {
        const pods: Request[] = (enroller?.enrolledPods() ?? []).map((e) => ({ kind: 'serve-pod', pod: serveAgain(e, id) }))
        const t = nodeTunnel?.listenerOf(id) ?? null
        return t === null ? pods : [...pods, { kind: 'serve-tunnel', target: t }]
      },
      log: log.child({ component: 'workers' }),
      registry: metrics.registry,
      // A failed worker's connection-pool counts would never be released: zeroed before its successor starts.
      forget: (id) => { nodeLimits.forgetWorker(id) }
    })
    undo.push(async () => { await workers.close() })
    // Beside the agent before us, accept nothing until we are ready (settleHandoff resumes).
    if (takeover !== null) await workers.all({ kind: 'hold' })

    // Policies: each snapshot (of --config-dir, or from the controller's stream, admitted
    // object by object) is published to every worker, which compiles and swaps it in
    // whole; the main thread's copy follows once every worker has it, so /debug/config
    // and readiness never report a generation a worker does not enforce yet. The first
    // load completes (or the stream times out, or the saved configuration is in force)
    // before any pod is enrolled. An agent that never had a configuration denies inbound
    // connections and is not ready until its first (fail closed); with no config source at
    // all no policy exists: everything is allowed.
    if (config !== null) {
      let applying: Promise<void> = Promise.resolve()
      const onSnapshot = (s: ConfigSnapshot): void => {
        const { locate: _, ...plain } = s
        workers.publish({ kind: 'config', snapshot: plain, rejected: null })
        const set = compilePolicySet(s)
        applying = applying.then(async () => { await workers.policyGeneration() }).catch(() => {}).then(() => { authz.swap(set) })
        cache?.save(savedConfigOf(s, s.objects.filter((o) => o.reportedBy !== undefined), { generation: s.generation }))
      }
      const onRejected = (issues: string[]): void => {
        workers.publish({ kind: 'config', snapshot: null, rejected: issues })
        authz.rejected(issues)
      }
      await config.start({ onSnapshot, onRejected: (err) => { onRejected(err.issues.map(formatIssue)) } })
      await applying
      if (config.current() === null) log.warn({ config: opened?.origin }, 'no valid configuration yet: inbound connections are denied and the agent is not ready until one arrives')
    }

    const events = deps.events !== undefined ? deps.events : (selected?.events ?? null)
    const svidPublisher = identities === null ? null : new SvidPublisher(identities, (p) => { workers.publish(p) })
    const enrolledPods = (): Pod[] => (enroller?.enrolledPods() ?? []).map((e) => e.plan.pod)
    if (identities !== null) undo.push(identities.onRotated(() => { svidPublisher?.update(enrolledPods()) }))
    enroller = new PodEnroller({
      node: options.node,
      locator: deps.locator ?? (selected as AgentDiscovery).locator,
      platform: deps.platform,
      capture,
      workers,
      metrics,
      log: log.child({ component: 'enroll' }),
      retry: deps.retry,
      adopt,
      onFailure: (pod, err) => { events?.record(pod, 'Warning', ENROLL_FAILED_REASON, err.message) },
      ...(identities === null
        ? {}
        : {
            onEnrolledChange: (pods, passDone) => {
              identities.sync(pods, { removeOthers: passDone })
              svidPublisher?.update(pods)
            }
          })
    })
    const podEnroller = enroller
    registerProbeMetrics(metrics.registry, () => probeCountsOf(capture, podEnroller.enrolledPods()))
    registerSockmapMetrics(metrics.registry, () => capture.sockmapReport?.() ?? null)
    // Started below, once the agent exists; until then it has no snapshot (current() is null).
    const source = deps.source ?? (selected as AgentDiscovery).source
    let tunnelPort: number | null = null
    if (nodeTunnel !== null) {
      const targets = nodeTunnel.listeners(options.identity?.tunnelPort ?? PORTS.tunnel, workers.size, adopt)
      tunnelPort = await workers.serveTunnel((id) => targets[id])
      nodeTunnel.listening(tunnelPort)
    }
    const scrape = async (): Promise<string> => await (await workers.metrics(metrics.registry)).metrics()
    const handed = (key: string): { fd: number } | undefined => { const fd = adopt(key); return fd === undefined ? undefined : { fd } }
    let agentRef: Agent | null = null
    const admin = await startAdminServers({ listeners: { admin: handed('admin'), ready: handed('ready') }, notReady: () => agentRef?.lent === true ? 'a new agent is taking over' : null, adminPort: options.adminPort, readyPort: options.readyPort, metrics, scrape, enroller, identities, tunnel, workers, log, authz, cluster: () => source.current(), node: options.node, trustDomain: options.identity?.trustDomain ?? IDENTITY_DEFAULTS.trustDomain, auth: deps.adminAuth ?? agentAdminAuth(options), sockmap: () => capture.sockmapReport?.() ?? null })
    undo.push(async () => { await admin.close() })
    let cni: AgentCni | null = null
    if (options.cni !== null) {
      const { AgentCni } = require('./agent-cni') as typeof import('./agent-cni')
      const cniFd = adopt('cni')
      cni = await AgentCni.start({ ...(cniFd === undefined ? {} : { listenFd: cniFd }), options: options.cni, node: options.node, kubernetes: options.kubernetes, enroller, current: () => source.current(), log: log.child({ component: 'cni' }), registry: metrics.registry })
    }
    const agent = new Agent(options, { registry: metrics.registry, text: scrape }, routes, enroller, admin, identities, tunnel, workers, capture, source, log, authz, config, cni, cache, spans)
    agentRef = agent
    source.start({
      onSnapshot: (s) => { agent.onSnapshot(s) },
      onError: (err) => { agent.onDiscoveryError(err) }
    })
    const ca = options.identity === null ? null : { address: options.identity.caAddress, trustDomain: options.identity.trustDomain, certTtlMs: options.identity.certTtlMs }
    void agent.settleHandoff(takeover)
    log.info({ node: options.node, clusterFile: options.clusterFile, kubernetes: options.kubernetes, pinRoot: options.pinRoot, adminPort: admin.adminPort, readyPort: admin.readyPort, tunnelPort, workers: workers.size, threads: threaded, ca, config: opened?.origin ?? null, cniSocket: options.cni?.entry.socket ?? null }, 'agent started')
    return agent
  }

  /**
   * SIGTERM: readiness answers 503 from now on, every pod listener is closed (new
   * connections are refused; capture keeps steering, as during a restart), new tunnel
   * streams to this node's pods are refused, and the live connections — accepted on pod
   * listeners or carried in tunnel streams, on every worker — get up to `graceMs` to
   * finish. Those still open then are reset on every worker and counted
   * (`ferry_drain_closed_connections_total`, and the log line DRAIN_CLOSED_MESSAGE).
   * Returns how many that was.
   */
  async drain (graceMs: number = this.options.drainGraceMs): Promise<number> {
    const before = await this.enroller.openConnections()
    // Pods starting now wait in their CNI ADD for the next agent (the plugin retries until its timeout).
    await this.cni?.stopServing()
    await this.enroller.stopAccepting()
    this.log.info({ connections: before, graceMs }, DRAINING_MESSAGE)
    const deadline = Date.now() + graceMs
    let left = await this.enroller.openConnections()
    while (left > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => { setTimeout(resolve, Math.min(DRAIN_POLL_MS, Math.max(0, deadline - Date.now()))) })
      left = await this.enroller.openConnections()
    }
    if (left === 0) {
      this.log.info({ connections: before }, 'drained: no live connections left')
      return 0
    }
    const closed = await this.workers.closeConnections()
    this.log.warn({ connections: closed, graceMs }, DRAIN_CLOSED_MESSAGE)
    return closed
  }

  /**
   * After a takeover: once ready (every pod enrolled, the configuration and certificates
   * in hand), the sockets nobody here needs are closed and the agent before us is told to
   * stop accepting. Then — and on a fresh start at once — we listen for the agent after us.
   */
  async settleHandoff (takeover: Takeover | null): Promise<void> {
    if (takeover !== null) {
      const deadline = Date.now() + TAKEOVER_READY_TIMEOUT_MS
      while (!this.ready() && !this.closing && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
      if (this.closing) return
      if (!this.ready()) {
        this.log.error({ timeoutMs: TAKEOVER_READY_TIMEOUT_MS, code: 'FERRY_ERR_HANDOFF' }, 'not ready in time: the takeover is given up, the agent before us serves on')
        takeover.abandon()
        return
      }
      const closed = takeover.closeUnadopted()
      try {
        await this.workers.all({ kind: 'resume' })
        await takeover.complete()
        this.log.info({ unused: closed.length }, 'the agent before us stopped accepting: we serve alone')
      } catch (err) {
        this.log.error({ err, code: 'FERRY_ERR_HANDOFF' }, 'the agent before us did not confirm it stopped accepting; we serve either way')
      }
    }
    const path = this.options.handoffSocket
    if (path === null || this.closing) return
    try {
      this.handoff = HandoffServer.listen({
        path,
        log: this.log.child({ component: 'handoff' }),
        listeners: () => this.handoffListeners(),
        onTakeoverStarted: () => { this.lent = true; this.cni?.socketLent(true) },
        onTakeoverAbandoned: () => { this.lent = false; this.cni?.socketLent(false) },
        onHandedOff: async () => { await this.handedOff() }
      })
    } catch (err) {
      this.log.error({ err, code: (err as FerryError).code }, 'cannot listen for the agent after us: an upgrade of this node will restart its listeners')
    }
  }

  /** Every pod enrolled, the configuration and (with a CA) every pod's certificate in hand. */
  private ready (): boolean {
    const s = this.enroller.status()
    if (!s.ready || !this.authz.readiness().ready) return false
    return this.identity === null || this.identity.certificates(this.enroller.enrolledPods().map((e) => e.plan.pod)).ready
  }

  private handoffListeners (): Array<{ key: string, fd: number }> {
    const cni = this.cni?.fd
    return [
      { key: 'admin', fd: this.admin.fds.admin },
      { key: 'ready', fd: this.admin.fds.ready },
      ...(cni === undefined ? [] : [{ key: 'cni', fd: cni }]),
      ...(this.tunnel?.handoffListeners() ?? []),
      ...this.enroller.enrolledPods().flatMap(handoffListeners)
    ]
  }

  /**
   * The agent after us serves our sockets: stop accepting on all of them (the sockets and
   * their queued connections live on in it) — pods' listeners, the tunnel (GOAWAY: peers
   * open new sessions, which reach the new agent), the CNI socket and the admin ports —
   * and let the connections we hold finish; SIGTERM then drains and exits. Nothing in
   * capture changes: its maps name sockets the new agent serves.
   */
  private async handedOff (): Promise<void> {
    this.lent = true
    await this.cni?.handedOff()
    await this.enroller.stopAccepting(true)
    await this.admin.close()
  }

  /** Stops serving: discovery, listeners, the workers, the tunnel, admin servers; closes capture (its pins stay, so capture keeps working for the next agent). */
  async close (): Promise<void> {
    this.closing = true
    this.handoff?.close()
    this.source.close()
    this.config?.close()
    await this.configCache?.flushed()
    await this.cni?.close()
    await this.enroller.close()
    await this.workers.close()
    // After the workers: the spans of their last requests are exported too.
    await this.spans?.shutdown()
    this.tunnel?.close()
    this.identity?.close()
    try { this.capture.close() } catch (err) { this.log.error({ err }, 'capture close failed') }
    await this.admin.close()
    this.log.info('agent stopped')
  }

  private onSnapshot (s: ClusterSnapshot): void {
    this.routes.update(s)
    this.workers.publish({ kind: 'cluster', snapshot: s })
    this.tunnel?.setPeerNodes(peerNodeAddresses(s, this.options.node))
    this.log.info({ generation: s.generation, pods: s.pods.length, services: s.services.length }, 'cluster snapshot')
    this.l7Warnings.report(l7TableFor(s, this.options.node))
    this.enroller.apply(s)
    this.cni?.onSnapshot(s)
  }

  private onDiscoveryError (err: FerryError): void {
    this.log.error({ code: err.code, errno: err.errno, err: err.message, generation: this.routes.index.generation }, 'cluster file rejected; keeping the last good snapshot')
  }
}

/**
 * The main thread's netns as the inline data plane sees it: the enroller's own handle on
 * the test platforms (they make sockets without a netns), a borrowed Netns (never closed
 * through it) on the real one.
 */
function borrowNetns (platform: Platform): (ref: NetnsRef) => NetnsHandle {
  return (ref) => ref.fd < 0 || platform.openTunnelSyn === undefined
    ? { path: ref.path, fd: ref.fd, cookie: ref.cookie, listen: notHere, socket: notHere, close: () => {} }
    : new Netns(ref.path, ref.fd)
}

function notHere (): never {
  throw new Error('the inline data plane makes no listener or socket through a borrowed netns handle')
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
