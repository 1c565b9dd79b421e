import { accessSync, constants, readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import type { Registry } from 'prom-client'
import type { Pod } from '../discovery/model'
import { ferryError, isFerryError } from '../errors'
import { CaClient, tokenFromFile, type CertificateSigner } from '../identity/ca-client'
import { CertificateManager, type RotatedEvent } from '../identity/certificate-manager'
import type { Clock } from '../identity/clock'
import { splitCertificates } from '../identity/pem'
import { formatSpiffeId } from '../identity/spiffe-id'
import type { Svid } from '../identity/svid'
import type { Logger } from '../telemetry/logger'
import type { AgentIdentityOptions } from './options'

// The node's workload identities: one SPIFFE ID per distinct (namespace, service
// account) among the pods the agent has enrolled, each with a certificate kept current
// by the CertificateManager. An identity is added when the first such pod is enrolled
// and removed when the last one leaves. The proxy (and the tunnel) look certificates up
// with svidFor(); readiness asks certificates() about the pods enrolled right now, and
// /debug/certificates (`ferry status`) asks details() about every identity.
//
// Rotations and failed requests are logged by the manager itself ('certificate in use'
// with rotated=true; 'certificate request failed; retrying' with the FERRY_ERR_* code).

/** What the data path needs: a pod's identity and the certificate to present for it. */
export interface WorkloadIdentity {
  readonly trustDomain: string
  /** spiffe://<trust domain>/ns/<namespace>/sa/<service account> of a pod. */
  spiffeIdOf (pod: Pod): string
  /** The certificate to present for `spiffeId` now, or null (none yet, or no such pod here). */
  svidFor (spiffeId: string): Svid | null
  /** Called with each new certificate (the tunnel swaps its SecureContext). Returns an unsubscribe. */
  onRotated (listener: (e: RotatedEvent) => void): () => void
}

export interface PendingIdentity {
  readonly spiffeId: string
  /** `requesting`: no certificate yet; `expired`: the one in hand expired with no successor. */
  readonly state: 'requesting' | 'expired'
  /** Failed requests since the last success. */
  readonly attempts: number
  readonly code?: string
  readonly error?: string
}

/** An identity whose certificate is valid but whose renewal has failed since the last success. */
export interface FailingRenewal {
  readonly spiffeId: string
  readonly serial: string
  /** When the certificate in hand expires (ISO 8601), and in how many seconds from now. */
  readonly notAfter: string
  readonly expiresInSeconds: number
  /** Failed requests since the last success, since when (ISO 8601), and the last one's error. */
  readonly failures: number
  readonly since: string
  readonly code: string
  readonly error: string
}

export interface CertificatesStatus {
  readonly ready: boolean
  /** Identities of the enrolled pods, sorted. */
  readonly identities: string[]
  readonly pending: PendingIdentity[]
  /** Renewals failing while the certificates in hand are valid: the node stays ready, on borrowed time. */
  readonly failing: FailingRenewal[]
}

/** One identity's certificate and renewal, for /debug/certificates and `ferry status`. */
export interface CertificateDetail {
  readonly spiffeId: string
  /** The certificate in hand (null before the first). */
  readonly serial: string | null
  readonly notBefore: string | null
  readonly notAfter: string | null
  readonly expiresInSeconds: number | null
  readonly expired: boolean
  /** When the next request to the CA is due (ISO 8601), null while one is under way. */
  readonly nextAttemptAt: string | null
  readonly lastAttempt: { readonly at: string, readonly ok: boolean } | null
  /** Failed requests since the last success; null when the last request succeeded. */
  readonly failures: { readonly count: number, readonly since: string, readonly code: string, readonly error: string } | null
}

export interface NodeIdentitiesOptions {
  readonly trustDomain: string
  readonly ttlMs: number
  readonly signer: CertificateSigner
  readonly log: Logger
  readonly registry: Registry
  readonly clock?: Clock
  /** Closed with the identities (the CA client). */
  readonly onClose?: () => void
}

export class NodeIdentities implements WorkloadIdentity {
  readonly trustDomain: string
  private readonly manager: CertificateManager
  private readonly log: Logger
  private readonly clock: Clock | undefined
  private readonly onClose: (() => void) | undefined

  constructor (opts: NodeIdentitiesOptions) {
    this.trustDomain = opts.trustDomain
    this.log = opts.log
    this.clock = opts.clock
    this.onClose = opts.onClose
    this.manager = new CertificateManager({ signer: opts.signer, log: opts.log, registry: opts.registry, ttlMs: opts.ttlMs, ...(opts.clock === undefined ? {} : { clock: opts.clock }) })
  }

  spiffeIdOf (pod: Pod): string {
    return formatSpiffeId({ trustDomain: this.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccountName })
  }

  svidFor (spiffeId: string): Svid | null {
    return this.manager.current(spiffeId)
  }

  onRotated (listener: (e: RotatedEvent) => void): () => void {
    this.manager.on('rotated', listener)
    return () => { this.manager.off('rotated', listener) }
  }

  /**
   * Adds the identities of `pods` (the enrolled pods) that are not managed yet; with
   * `removeOthers`, also removes those that no pod of `pods` has.
   */
  sync (pods: readonly Pod[], opts: { removeOthers: boolean }): void {
    const wanted = new Map<string, number>()
    for (const pod of pods) {
      const id = this.spiffeIdOf(pod)
      wanted.set(id, (wanted.get(id) ?? 0) + 1)
    }
    for (const id of this.manager.identities()) {
      if (!opts.removeOthers || wanted.has(id)) continue
      this.manager.remove(id)
      this.log.info({ spiffeId: id }, 'identity removed: its last pod left the node')
    }
    const have = new Set(this.manager.identities())
    for (const [id, count] of wanted) {
      if (have.has(id)) continue
      try {
        this.manager.add(id)
        this.log.info({ spiffeId: id, pods: count }, 'identity added: requesting a certificate')
      } catch (err) {
        // Pod namespaces and service accounts are validated Kubernetes names, so this
        // takes a trust domain and names that together exceed a SPIFFE ID's limits.
        this.log.error({ spiffeId: id, code: isFerryError(err) ? err.code : undefined, err: (err as Error).message }, 'identity cannot be managed')
      }
    }
  }

  /**
   * Whether every identity of `pods` has an unexpired certificate, which do not, and
   * which are valid but failing to renew (those do not make the node unready).
   */
  certificates (pods: readonly Pod[]): CertificatesStatus {
    const now = this.clock?.now() ?? Date.now()
    const identities = [...new Set(pods.map((p) => this.spiffeIdOf(p)))].sort()
    const pending: PendingIdentity[] = []
    const failing: FailingRenewal[] = []
    for (const spiffeId of identities) {
      const st = this.manager.status(spiffeId)
      const svid = st?.svid ?? null
      const f = st?.failures ?? null
      if (svid !== null && svid.notAfter > now) {
        if (f !== null) {
          failing.push({
            spiffeId,
            serial: svid.serial,
            notAfter: new Date(svid.notAfter).toISOString(),
            expiresInSeconds: Math.floor((svid.notAfter - now) / 1000),
            failures: f.count,
            since: new Date(f.since).toISOString(),
            code: f.code,
            error: f.error
          })
        }
        continue
      }
      pending.push({
        spiffeId,
        state: svid === null ? 'requesting' : 'expired',
        attempts: f?.count ?? 0,
        ...(f === null ? {} : { code: f.code, error: f.error })
      })
    }
    return { ready: pending.length === 0, identities, pending, failing }
  }

  /** Every managed identity's certificate and renewal state, sorted by SPIFFE ID. */
  details (): CertificateDetail[] {
    const now = this.clock?.now() ?? Date.now()
    const iso = (ms: number): string => new Date(ms).toISOString()
    return this.manager.identities().sort().map((spiffeId) => {
      const st = this.manager.status(spiffeId)
      const svid = st?.svid ?? null
      const f = st?.failures ?? null
      return {
        spiffeId,
        serial: svid?.serial ?? null,
        notBefore: svid === null ? null : iso(svid.notBefore),
        notAfter: svid === null ? null : iso(svid.notAfter),
        expiresInSeconds: svid === null ? null : Math.floor((svid.notAfter - now) / 1000),
        expired: svid !== null && svid.notAfter < now,
        nextAttemptAt: st?.nextAttemptAt == null ? null : iso(st.nextAttemptAt),
        lastAttempt: st?.lastAttempt == null ? null : { at: iso(st.lastAttempt.at), ok: st.lastAttempt.ok },
        failures: f === null ? null : { count: f.count, since: iso(f.since), code: f.code, error: f.error }
      }
    })
  }

  close (): void {
    this.manager.close()
    this.onClose?.()
  }
}

/**
 * The real thing: a CA client for `o` and a manager on `registry`. Reads the CA roots
 * once and checks the token file can be read, so a bad path fails at start
 * (FERRY_ERR_CONFIG), not at the first request.
 */
export function openNodeIdentities (o: AgentIdentityOptions, deps: { log: Logger, registry: Registry }): NodeIdentities {
  let rootsText: string
  try {
    rootsText = readFileSync(o.caRoot, 'utf8')
  } catch (err) {
    throw ferryError('FERRY_ERR_CONFIG', `--ca-root ${o.caRoot}: cannot read: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
  const roots = splitCertificates(rootsText)
  if (roots.length === 0) throw ferryError('FERRY_ERR_CONFIG', `--ca-root ${o.caRoot}: no PEM certificate in it`)
  for (const pem of roots) {
    try {
      if (!new X509Certificate(pem).ca) throw new Error('not a CA certificate')
    } catch (err) {
      throw ferryError('FERRY_ERR_CONFIG', `--ca-root ${o.caRoot}: ${(err as Error).message}`, { cause: err })
    }
  }
  try {
    accessSync(o.caTokenFile, constants.R_OK)
  } catch (err) {
    throw ferryError('FERRY_ERR_CONFIG', `--ca-token-file ${o.caTokenFile}: cannot read: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
  }
  const client = new CaClient({ address: o.caAddress, caRootsPem: roots.join(''), token: tokenFromFile(o.caTokenFile) })
  return new NodeIdentities({
    trustDomain: o.trustDomain,
    ttlMs: o.certTtlMs,
    signer: client,
    log: deps.log,
    registry: deps.registry,
    onClose: () => { client.close() }
  })
}
