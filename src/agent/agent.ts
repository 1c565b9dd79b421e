import '../balancer'
import { createDiscoverySource, type DiscoverySource } from '../discovery'
import type { ClusterSnapshot } from '../discovery/model'
import { createPodLocator, type PodLocator } from '../discovery/pod-locator'
import type { FerryError } from '../errors'
import { RouteTable } from '../proxy/route-table'
import { createAccessLog } from '../telemetry/access-log'
import { createConnTelemetry } from '../telemetry/conn-telemetry'
import type { Logger } from '../telemetry/logger'
import { ProxyMetrics } from '../telemetry/metrics'
import { type AdminServers, startAdminServers } from './admin-server'
import { PodEnroller } from './enroller'
import { type NodeIdentities, openNodeIdentities } from './identities'
import type { AgentOptions } from './options'
import type { CaptureHandle, Platform } from './platform'

// The per-node agent: discovery → routes + enrollment → proxy, with admin endpoints;
// with a CA, a certificate for each identity of the enrolled pods (identities.ts).
// Runs in the node's network namespace; its sockets belong to its own cgroup, so
// capture never rewrites them.

export interface AgentDeps {
  readonly platform: Platform
  readonly log: Logger
  /** Defaults to the `file` source on opts.clusterFile. */
  readonly source?: DiscoverySource
  /** Defaults to the lab-annotation locator. */
  readonly locator?: PodLocator
  readonly retry?: { initialMs: number, maxMs: number }
  readonly connectTimeoutMs?: number
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
    private readonly capture: CaptureHandle,
    private readonly source: DiscoverySource,
    private readonly log: Logger
  ) {}

  static async start (options: AgentOptions, deps: AgentDeps): Promise<Agent> {
    const log = deps.log
    const metrics = new ProxyMetrics()
    const routes = new RouteTable()
    const telemetry = createConnTelemetry(metrics, createAccessLog(log))
    const identities = options.identity === null
      ? null
      : openNodeIdentities(options.identity, { log: log.child({ component: 'identity' }), registry: metrics.registry })
    let capture: CaptureHandle
    try {
      capture = await deps.platform.openCapture({ pinRoot: options.pinRoot, log })
    } catch (err) {
      identities?.close()
      throw err
    }
    const enroller = new PodEnroller({
      node: options.node,
      locator: deps.locator ?? createPodLocator('lab-annotations'),
      platform: deps.platform,
      capture,
      routes,
      telemetry,
      metrics,
      log: log.child({ component: 'enroll' }),
      retry: deps.retry,
      connectTimeoutMs: deps.connectTimeoutMs,
      identity: identities,
      ...(identities === null ? {} : { onEnrolledChange: (pods, passDone) => { identities.sync(pods, { removeOthers: passDone }) } })
    })
    let admin: AdminServers
    try {
      admin = await startAdminServers({ adminPort: options.adminPort, readyPort: options.readyPort, metrics, enroller, identities, log })
    } catch (err) {
      capture.close()
      identities?.close()
      throw err
    }
    const source = deps.source ?? createDiscoverySource('file', { target: options.clusterFile, log: log.child({ component: 'discovery' }) })
    const agent = new Agent(options, metrics, routes, enroller, admin, identities, capture, source, log)
    source.start({
      onSnapshot: (s) => { agent.onSnapshot(s) },
      onError: (err) => { agent.onDiscoveryError(err) }
    })
    const ca = options.identity === null ? null : { address: options.identity.caAddress, trustDomain: options.identity.trustDomain, certTtlMs: options.identity.certTtlMs }
    log.info({ node: options.node, clusterFile: options.clusterFile, pinRoot: options.pinRoot, adminPort: admin.adminPort, readyPort: admin.readyPort, ca }, 'agent started')
    return agent
  }

  /** Stops serving: discovery, listeners, admin servers; closes capture (its pins stay, so capture keeps working for the next agent). */
  async close (): Promise<void> {
    this.source.close()
    await this.enroller.close()
    this.identity?.close()
    try { this.capture.close() } catch (err) { this.log.error({ err }, 'capture close failed') }
    await this.admin.close()
    this.log.info('agent stopped')
  }

  private onSnapshot (s: ClusterSnapshot): void {
    this.routes.update(s)
    this.log.info({ generation: s.generation, pods: s.pods.length, services: s.services.length }, 'cluster snapshot')
    this.enroller.apply(s)
  }

  private onDiscoveryError (err: FerryError): void {
    this.log.error({ code: err.code, errno: err.errno, err: err.message, generation: this.routes.index.generation }, 'cluster file rejected; keeping the last good snapshot')
  }
}
