import { EventEmitter } from 'node:events'
import type { Registry } from 'prom-client'
import { ferryError, type FerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { checkBackoff, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff'
import type { CertificateSigner } from './ca-client'
import { CERT_TTL } from './cert-ttl'
import { systemClock, type Clock, type Random } from './clock'
import { formatDuration } from './duration'
import { IdentityMetrics } from './metrics'
import { parseSpiffeId, type SpiffeId } from './spiffe-id'
import type { Svid } from './svid'
import { SvidRotation, type RotationStatus } from './svid-rotation'

// The agent's certificates: one SVID per identity present on the node. The agent adds an
// identity when the first pod with it is enrolled and removes it when the last one goes;
// the manager obtains, renews and retries (svid-rotation.ts) and tells listeners.
//
// Events (listeners run synchronously; they must not throw):
//   'rotated' {spiffeId, svid, previous}  a new certificate is current (previous null: first)
//   'retry'   {spiffeId, attempt, delayMs, error}  a request failed; next try after delayMs
//   'expired' {spiffeId, svid}  the current certificate expired with no successor
// Metrics (on the injected registry): ferry_certificate_expiry_timestamp_seconds{spiffe_id},
// ferry_certificate_requests_total{result}, ferry_certificate_renewal_failures_total and
// ferry_certificate_earliest_expiry_seconds (src/identity/metrics.ts).

export const CERTIFICATE_DEFAULTS = Object.freeze({
  ttlMs: CERT_TTL.defaultMs,
  renewFraction: 0.5
})

export interface CertificateManagerOptions {
  readonly signer: CertificateSigner
  readonly log: Logger
  readonly registry?: Registry
  /** Lifetime to request (default 24 h; tests use seconds). */
  readonly ttlMs?: number
  /** Renew when this fraction of the lifetime has passed (default 0.5). */
  readonly renewFraction?: number
  readonly backoff?: Partial<BackoffPolicy>
  readonly clock?: Clock
  readonly random?: Random
}

export interface RotatedEvent { readonly spiffeId: string, readonly svid: Svid, readonly previous: Svid | null }
export interface RetryEvent { readonly spiffeId: string, readonly attempt: number, readonly delayMs: number, readonly error: FerryError }
export interface ExpiredEvent { readonly spiffeId: string, readonly svid: Svid }

export interface CertificateManager {
  on (event: 'rotated', listener: (e: RotatedEvent) => void): this
  on (event: 'retry', listener: (e: RetryEvent) => void): this
  on (event: 'expired', listener: (e: ExpiredEvent) => void): this
}

export class CertificateManager extends EventEmitter {
  private readonly rotations = new Map<string, SvidRotation>()
  private readonly waiters = new Map<string, Array<{ resolve: (svid: Svid) => void, reject: (err: Error) => void }>>()
  private readonly settings: ConstructorParameters<typeof SvidRotation>[1]
  private closed = false

  constructor (opts: CertificateManagerOptions) {
    super()
    const renewFraction = opts.renewFraction ?? CERTIFICATE_DEFAULTS.renewFraction
    const ttlMs = opts.ttlMs ?? CERTIFICATE_DEFAULTS.ttlMs
    const backoff = checkBackoff({ ...DEFAULT_BACKOFF, ...opts.backoff }, 'backoff')
    if (!(renewFraction > 0 && renewFraction < 1)) throw ferryError('FERRY_ERR_INVALID_ARG', `renewFraction ${renewFraction} is invalid: expected a number between 0 and 1`)
    if (!(ttlMs >= CERT_TTL.minMs && ttlMs <= CERT_TTL.maxMs)) throw ferryError('FERRY_ERR_INVALID_ARG', `certificate ttl ${ttlMs} ms is invalid: expected ${formatDuration(CERT_TTL.minMs)} to ${formatDuration(CERT_TTL.maxMs)}`)
    const clock = opts.clock ?? systemClock
    this.settings = Object.freeze({
      signer: opts.signer,
      clock,
      random: opts.random ?? Math.random,
      ttlMs,
      renewFraction,
      backoff,
      metrics: new IdentityMetrics(opts.registry, () => clock.now()),
      log: opts.log
    })
  }

  /** Starts obtaining a certificate for `id` (idempotent). Throws FERRY_ERR_SPIFFE_ID for a bad ID. */
  add (id: SpiffeId | string): void {
    const spiffeId = typeof id === 'string' ? parseSpiffeId(id) : id
    if (this.closed) throw ferryError('FERRY_ERR_INVALID_ARG', 'the certificate manager is closed')
    if (this.rotations.has(spiffeId.uri)) return
    const rotation = new SvidRotation(spiffeId, this.settings, {
      onRotated: (svid, previous) => {
        for (const w of this.waiters.get(spiffeId.uri) ?? []) w.resolve(svid)
        this.waiters.delete(spiffeId.uri)
        this.emit('rotated', { spiffeId: spiffeId.uri, svid, previous })
      },
      onRetry: (attempt, delayMs, error) => { this.emit('retry', { spiffeId: spiffeId.uri, attempt, delayMs, error }) },
      onExpired: (svid) => { this.emit('expired', { spiffeId: spiffeId.uri, svid }) }
    })
    this.rotations.set(spiffeId.uri, rotation)
    rotation.start()
  }

  /** Stops renewing `id` and forgets its key and certificate. */
  remove (id: SpiffeId | string): void {
    const uri = typeof id === 'string' ? id : id.uri
    const rotation = this.rotations.get(uri)
    if (rotation === undefined) return
    rotation.close()
    this.rotations.delete(uri)
    this.settings.metrics.identityRemoved(uri)
    this.rejectWaiters(uri, ferryError('FERRY_ERR_INVALID_ARG', `identity ${uri} was removed before it had a certificate`))
  }

  /** The certificate in hand for `id` (possibly expired: see 'expired'), or null before the first. */
  current (id: SpiffeId | string): Svid | null {
    return this.rotations.get(typeof id === 'string' ? id : id.uri)?.current ?? null
  }

  /** Resolves with the current certificate of `id`, waiting for the first one if need be. */
  async whenReady (id: SpiffeId | string): Promise<Svid> {
    const uri = typeof id === 'string' ? id : id.uri
    const now = this.current(uri)
    if (now !== null) return now
    if (!this.rotations.has(uri)) throw ferryError('FERRY_ERR_INVALID_ARG', `identity ${uri} is not managed (add it first)`)
    return await new Promise<Svid>((resolve, reject) => {
      const list = this.waiters.get(uri) ?? []
      list.push({ resolve, reject })
      this.waiters.set(uri, list)
    })
  }

  /** The renewal state of `id` (certificate, next attempt, failures), or null when not managed. */
  status (id: SpiffeId | string): RotationStatus | null {
    return this.rotations.get(typeof id === 'string' ? id : id.uri)?.status() ?? null
  }

  identities (): string[] {
    return [...this.rotations.keys()]
  }

  /** True when every managed identity has a certificate that has not expired (readiness). */
  ready (): boolean {
    const now = this.settings.clock.now()
    for (const r of this.rotations.values()) if (r.current === null || r.current.notAfter < now) return false
    return true
  }

  close (): void {
    this.closed = true
    for (const uri of [...this.rotations.keys()]) this.remove(uri)
  }

  private rejectWaiters (uri: string, err: Error): void {
    for (const w of this.waiters.get(uri) ?? []) w.reject(err)
    this.waiters.delete(uri)
  }
}
