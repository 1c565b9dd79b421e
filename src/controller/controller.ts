import { generateKeyPairSync } from 'node:crypto'
import { FileDiscoverySource } from '../discovery/source-file'
import { systemClock, type Clock } from '../identity/clock'
import { caProtos } from '../identity/protos'
import type { Logger } from '../telemetry/logger'
import type { Authenticator } from './authn'
import { LabTokenAuthenticator } from './authn-lab'
import type { Authorizer } from './authz'
import { PodNodeAuthorizer } from './authz-pod-node'
import { trustBundleServiceHandlers } from './bundle-service'
import { loadOrCreateRoot } from './ca-store'
import { certificateServiceHandlers } from './ca-service'
import { CertificateIssuer } from './issuer'
import type { ControllerOptions } from './options'
import { CaGrpcServer } from './server'

// `ferry controller`, assembled: the CA root from the data directory, the issuer, the
// authenticator (lab tokens) and authorizer (pods by node, from the cluster file), and
// the gRPC server with a fresh serving certificate signed by the root. The serving key is
// made at each start and kept in memory only.

/** The serving certificate is re-made at every start; a year is far longer than any run. */
const SERVING_TTL_MS = 365 * 86_400_000
/** How long start() waits for the first pod list before serving anyway (requests are refused until it comes). */
const POD_LIST_WAIT_MS = 5000

export interface ControllerDeps {
  readonly log: Logger
  readonly clock?: Clock
  /** Replace the lab implementations (a Kubernetes TokenReview authenticator, say). */
  readonly authenticator?: Authenticator
  readonly authorizer?: Authorizer
}

export class Controller {
  private constructor (
    private readonly server: CaGrpcServer,
    private readonly authenticator: Authenticator,
    private readonly authorizer: Authorizer,
    /** PEM root certificate: what agents must trust. */
    readonly rootCertPem: string,
    /** Where that certificate is on disk. */
    readonly rootCertPath: string,
    readonly trustDomain: string
  ) {}

  static async start (options: ControllerOptions, deps: ControllerDeps): Promise<Controller> {
    const clock = deps.clock ?? systemClock
    const log = deps.log
    const { root, certPath } = await loadOrCreateRoot(options.dataDir, { trustDomain: options.trustDomain, now: clock.now(), log })
    const issuer = new CertificateIssuer(root)
    const authenticator = deps.authenticator ?? await LabTokenAuthenticator.open(options.labNodesFile, log)
    let authorizer: Authorizer | undefined
    try {
      authorizer = deps.authorizer ?? new PodNodeAuthorizer({
        trustDomain: options.trustDomain,
        source: new FileDiscoverySource({ path: options.clusterFile, log }),
        log
      })
      await waitForPodList(authorizer, log)
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
          { definition: protos.trustBundleService, handlers: trustBundleServiceHandlers({ trustDomain: options.trustDomain, issuer }) }
        ]
      })
      log.info({ address: server.address, trustDomain: options.trustDomain, rootCert: certPath, servingNames: options.servingNames, authenticator: authenticator.kind }, 'controller listening')
      return new Controller(server, authenticator, authorizer, root.certPem, certPath, options.trustDomain)
    } catch (err) {
      authorizer?.close()
      authenticator.close()
      throw err
    }
  }

  /** host:port the CA listens on (the real port when 0 was asked). */
  get address (): string { return this.server.address }
  get port (): number { return this.server.port }

  async close (): Promise<void> {
    this.authorizer.close()
    this.authenticator.close()
    await this.server.close()
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
