import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { FileDiscoverySource } from '../discovery/source-file'
import { systemClock, type Clock } from '../identity/clock'
import { caProtos } from '../identity/protos'
import type { KubeConfigSource } from '../kubernetes/client'
import { KubernetesPodPlacement } from '../kubernetes/pod-placement'
import { KubernetesPolicyObjects } from '../kubernetes/policy-objects'
import { kubernetesTokenReviewer } from '../kubernetes/token-review'
import { loadSavedConfig, SAVED_CONFIG_FORMAT, type SavedConfig, SavedConfigWriter } from '../resources/saved-config'
import type { Logger } from '../telemetry/logger'
import type { Authenticator } from './authn'
import { LabTokenAuthenticator } from './authn-lab'
import { TokenReviewAuthenticator } from './authn-token-review'
import type { Authorizer } from './authz'
import { PodNodeAuthorizer } from './authz-pod-node'
import { trustBundleServiceHandlers } from './bundle-service'
import { loadOrCreateRoot } from './ca-store'
import { certificateServiceHandlers } from './ca-service'
import type { ConfigFeed, ConfigVersion } from './config-feed'
import { DirectoryConfigFeed } from './config-feed-dir'
import { KubernetesConfigFeed } from './config-feed-kubernetes'
import { configProtos } from './config-protos'
import { type AgentConfigState, ConfigStreamService } from './config-service'
import { CertificateIssuer } from './issuer'
import type { ControllerOptions } from './options'
import { placementsFromDiscovery, type PodPlacementSource } from './pod-placement'
import { CaGrpcServer } from './server'

// `ferry controller`, assembled: the CA root from the data directory, the issuer, the
// authenticator and the authorizer's pod placement — lab tokens and the cluster file in
// the lab, TokenReview and the API server's pods with --kubernetes — the configuration
// feed (--config-dir, or the API server's policy objects), and the gRPC server with a
// fresh serving certificate signed by the root: the CA, the trust bundle and the
// configuration stream on one TLS port. The serving key is made at each start and kept
// in memory only. Every configuration version is saved in the state directory (the data
// directory unless --state-dir: config-state.json); at start the saved one is served
// until the feed has read the current state, and it seeds the feed's memory of each
// object's last valid version.

/** The serving certificate is re-made at every start; a year is far longer than any run. */
const SERVING_TTL_MS = 365 * 86_400_000
/** How long start() waits for the first pod list before serving anyway (requests are refused until it comes). */
const POD_LIST_WAIT_MS = 5000
/** How long start() waits for the first configuration before serving anyway (streams get it when it comes). */
const CONFIG_WAIT_MS = 5000
/** In --state-dir (--data-dir by default): the last configuration version served (src/resources/saved-config.ts). */
export const CONFIG_STATE_FILE = 'config-state.json'
/** In a pod: the namespace the controller runs in (its agents' service account lives there by default). */
const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace'

export interface ControllerDeps {
  readonly log: Logger
  readonly clock?: Clock
  /** Replace the implementations the options choose (tests). */
  readonly authenticator?: Authenticator
  readonly authorizer?: Authorizer
  readonly configFeed?: ConfigFeed | null
  /** With --kubernetes: the API server to use instead of the options' (tests: a local server). */
  readonly kubeconfig?: KubeConfigSource
  /** Where the controller's metrics go (default: a registry of its own). */
  readonly registry?: Registry
  /** Streams live at most this long before the agent must reconnect (default 30 min). */
  readonly maxStreamAgeMs?: number
}

export class Controller {
  private constructor (
    private readonly server: CaGrpcServer,
    private readonly authenticator: Authenticator,
    private readonly authorizer: Authorizer,
    private readonly feed: ConfigFeed | null,
    private readonly configService: ConfigStreamService,
    private readonly configState: SavedConfigWriter,
    /** PEM root certificate: what agents must trust. */
    readonly rootCertPem: string,
    /** Where that certificate is on disk. */
    readonly rootCertPath: string,
    readonly trustDomain: string,
    /** The controller's metrics (configuration stream). */
    readonly registry: Registry
  ) {}

  static async start (options: ControllerOptions, deps: ControllerDeps): Promise<Controller> {
    const clock = deps.clock ?? systemClock
    const log = deps.log
    const registry = deps.registry ?? new Registry()
    const { root, certPath } = await loadOrCreateRoot(options.dataDir, { trustDomain: options.trustDomain, now: clock.now(), log })
    const issuer = new CertificateIssuer(root)
    const kubeconfig: KubeConfigSource = deps.kubeconfig ?? (options.kubernetes?.kubeconfig == null ? {} : { file: options.kubernetes.kubeconfig })
    const authenticator = deps.authenticator ?? await openAuthenticator(options, kubeconfig, clock, log)
    let authorizer: Authorizer | undefined
    let feed: ConfigFeed | null = null
    let configService: ConfigStreamService | undefined
    const configLog = log.child({ component: 'config' })
    const statePath = join(options.stateDir, CONFIG_STATE_FILE)
    const configState = new SavedConfigWriter(statePath, configLog)
    try {
      authorizer = deps.authorizer ?? new PodNodeAuthorizer({ trustDomain: options.trustDomain, source: placementSource(options, kubeconfig, log), log })
      if (deps.configFeed !== undefined) {
        feed = deps.configFeed
      } else {
        const saved = options.configDir !== null || options.kubernetes !== null ? await loadSavedConfig(statePath, configLog) : null
        const kind = options.configDir !== null ? 'directory' : 'kubernetes'
        // A state saved from another kind of feed names other documents: not served.
        if (saved !== null && saved.meta.feed !== kind) configLog.warn({ path: statePath, saved: saved.meta.feed ?? null, feed: kind }, 'saved configuration is from another configuration source; not served')
        feed = configFeed(options, kubeconfig, configLog, registry, saved?.meta.feed === kind ? saved : null)
      }
      configService = new ConfigStreamService({ authenticator, log, registry, instance: randomBytes(6).toString('hex'), maxStreamAgeMs: deps.maxStreamAgeMs }, feed !== null)
      const service = configService
      await Promise.all([
        waitForPodList(authorizer, log),
        feed?.start((v) => {
          service.publish(v)
          if (v.restored !== true) configState.save(savedConfigOfVersion(v, feed?.kind ?? 'none'))
        }, CONFIG_WAIT_MS)
      ])
      if (feed !== null && feed.current() === null) log.warn({ source: feed.kind }, 'no valid configuration yet; agents get it when there is one')
      const serving = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      const servingCert = await issuer.issueServing(serving.publicKey.export({ format: 'der', type: 'spki' }), options.servingNames, SERVING_TTL_MS, clock.now())
      const protos = caProtos()
      const server = await CaGrpcServer.start({
        host: options.listen.host,
        port: options.listen.port,
        keyPem: serving.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
        certChainPem: servingCert.pem + root.certPem,
        services: [
          { definition: protos.certificateService, handlers: certificateServiceHandlers({ authenticator, authorizer, issuer, maxTtlMs: options.certTtlMs, clock, log }) },
          { definition: protos.trustBundleService, handlers: trustBundleServiceHandlers({ trustDomain: options.trustDomain, issuer }) },
          { definition: configProtos().configService, handlers: configService.handlers() }
        ]
      })
      log.info({
        address: server.address, trustDomain: options.trustDomain, rootCert: certPath, servingNames: options.servingNames,
        authenticator: authenticator.kind, config: feed?.kind ?? null, configVersion: feed?.current()?.version ?? null
      }, 'controller listening')
      return new Controller(server, authenticator, authorizer, feed, configService, configState, root.certPem, certPath, options.trustDomain, registry)
    } catch (err) {
      configService?.close()
      feed?.close()
      authorizer?.close()
      authenticator.close()
      throw err
    }
  }

  /** host:port the CA listens on (the real port when 0 was asked). */
  get address (): string { return this.server.address }
  get port (): number { return this.server.port }

  /** Each agent's configuration stream and its ACK/NACK state. */
  configAgents (): AgentConfigState[] { return this.configService.agents() }

  /** The configuration version in force (null: none yet, or no configuration source). */
  configVersion (): number | null { return this.feed?.current()?.version ?? null }

  async close (): Promise<void> {
    this.configService.close()
    this.feed?.close()
    await this.configState.flushed()
    this.authorizer.close()
    this.authenticator.close()
    await this.server.close()
  }
}

async function openAuthenticator (options: ControllerOptions, kubeconfig: KubeConfigSource, clock: Clock, log: Logger): Promise<Authenticator> {
  if (options.kubernetes === null) return await LabTokenAuthenticator.open(options.labNodesFile as string, log)
  const sa = options.kubernetes.agentServiceAccount
  return new TokenReviewAuthenticator({
    review: await kubernetesTokenReviewer(kubeconfig),
    log: log.child({ component: 'token-review' }),
    clock,
    audience: options.kubernetes.tokenAudience,
    namespace: sa.namespace ?? ownNamespace(),
    serviceAccount: sa.name
  })
}

function placementSource (options: ControllerOptions, kubeconfig: KubeConfigSource, log: Logger): PodPlacementSource {
  if (options.kubernetes !== null) return new KubernetesPodPlacement({ kubeconfig })
  const path = options.clusterFile as string
  return placementsFromDiscovery(new FileDiscoverySource({ path, log }), `cluster file ${path}`)
}

function configFeed (options: ControllerOptions, kubeconfig: KubeConfigSource, log: Logger, registry: Registry, saved: SavedConfig | null): ConfigFeed | null {
  const common = { log, rootNamespace: options.rootNamespace, registry, saved }
  if (options.configDir !== null) return new DirectoryConfigFeed({ ...common, dir: options.configDir })
  if (options.kubernetes !== null) return new KubernetesConfigFeed({ ...common, source: new KubernetesPolicyObjects({ kubeconfig }) })
  return null
}

function savedConfigOfVersion (v: ConfigVersion, feed: string): SavedConfig {
  return { format: SAVED_CONFIG_FORMAT, savedAt: new Date().toISOString(), origin: v.origin, rootNamespace: v.rootNamespace, documents: v.documents, upstreamReports: v.refused, meta: { version: v.version, feed } }
}

function ownNamespace (): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim() || 'ferry-system'
  } catch {
    return 'ferry-system'
  }
}

async function waitForPodList (authorizer: Authorizer, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const loaded = await Promise.race([
    authorizer.whenLoaded().then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, POD_LIST_WAIT_MS) })
  ])
  clearTimeout(timer)
  if (!loaded) log.warn({ waitedMs: POD_LIST_WAIT_MS }, 'no pod list yet; serving anyway, certificate requests are refused until it comes')
}
