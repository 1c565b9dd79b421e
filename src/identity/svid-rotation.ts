import { isFerryError, type FerryError, ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { backoffDelay, type BackoffPolicy } from './backoff'
import type { CertificateSigner } from './ca-client'
import type { Clock, Random, TimerHandle } from './clock'
import { createCsr } from './csr'
import { generateWorkloadKey } from './keys'
import type { IdentityMetrics } from './metrics'
import type { SpiffeId } from './spiffe-id'
import { svidFromChain, type Svid } from './svid'

// One identity's certificate life: request, serve, renew, retry.
//
//   - Every request uses a fresh P-256 key and CSR; the key stays in this process.
//   - The certificate in hand stays current until a new one has been received AND checked
//     (svidFromChain); a failed renewal never takes it away.
//   - Renewal is due at `renewFraction` of the remaining lifetime, measured from when the
//     certificate arrived (or its notBefore if later): with 0.5 and a 24 h certificate,
//     after 12 h. X.509 has second precision, so for lifetimes of seconds measuring from
//     arrival keeps renewals from bunching up.
//   - A failed request (CA down, refusal, bad answer) is retried with exponential backoff
//     and jitter, indefinitely, until close(). Success resets the backoff. While a
//     certificate is in hand, no retry waits longer than a tenth of the time it has left
//     (nor less than the backoff's initial delay): a CA back a minute before expiry is
//     tried about every 6 s, not after the 60 s backoff ceiling.
//   - status() says what an operator needs during an outage: the certificate in hand,
//     when the next request is due, the last attempt, and the failures since the last
//     success (how many, since when, the last error).
//   - When the current certificate passes notAfter with no successor, onExpired fires once.

export interface RotationSettings {
  readonly signer: CertificateSigner
  readonly clock: Clock
  readonly random: Random
  /** Lifetime to ask for; the CA may grant less. */
  readonly ttlMs: number
  readonly renewFraction: number
  readonly backoff: BackoffPolicy
  readonly metrics: IdentityMetrics
  readonly log: Logger
}

export interface RotationHooks {
  onRotated (svid: Svid, previous: Svid | null): void
  onRetry (attempt: number, delayMs: number, error: FerryError): void
  onExpired (svid: Svid): void
}

/** Retries while a certificate is in hand come at least this many times before its expiry. */
export const RETRIES_BEFORE_EXPIRY = 10

export interface RotationFailures {
  /** Failed requests since the last success. */
  readonly count: number
  /** When the first of them failed (ms since the epoch). */
  readonly since: number
  readonly code: string
  readonly error: string
}

export interface RotationStatus {
  readonly svid: Svid | null
  /** When the next request is due (ms since the epoch), or null while one is under way. */
  readonly nextAttemptAt: number | null
  readonly lastAttempt: { readonly at: number, readonly ok: boolean } | null
  /** Null when the last request succeeded (or none was made yet). */
  readonly failures: RotationFailures | null
}

export class SvidRotation {
  private svid: Svid | null = null
  private timer: TimerHandle | null = null
  private expiryTimer: TimerHandle | null = null
  private attempt = 0
  private nextAttemptAt: number | null = null
  private lastAttempt: { at: number, ok: boolean } | null = null
  private failures: RotationFailures | null = null
  private closed = false
  private readonly log: Logger

  constructor (readonly id: SpiffeId, private readonly s: RotationSettings, private readonly hooks: RotationHooks) {
    this.log = s.log.child({ spiffeId: id.uri })
  }

  get current (): Svid | null { return this.svid }

  status (): RotationStatus {
    return { svid: this.svid, nextAttemptAt: this.nextAttemptAt, lastAttempt: this.lastAttempt, failures: this.failures }
  }

  start (): void {
    this.schedule(0)
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) this.s.clock.clearTimer(this.timer)
    if (this.expiryTimer !== null) this.s.clock.clearTimer(this.expiryTimer)
    this.timer = this.expiryTimer = null
  }

  private schedule (ms: number): void {
    if (this.closed) return
    if (this.timer !== null) this.s.clock.clearTimer(this.timer)
    this.nextAttemptAt = this.s.clock.now() + ms
    this.timer = this.s.clock.setTimer(() => { this.timer = null; this.nextAttemptAt = null; void this.request() }, ms)
  }

  private async request (): Promise<void> {
    let svid: Svid
    try {
      const key = await generateWorkloadKey()
      const csr = await createCsr(key, this.id)
      const chain = await this.s.signer.createCertificate(csr, Math.max(1, Math.ceil(this.s.ttlMs / 1000)))
      svid = svidFromChain(chain, key, this.id, this.s.clock.now())
    } catch (err) {
      if (this.closed) return
      this.failed(isFerryError(err) ? err : ferryError('FERRY_ERR_CA_UNAVAILABLE', `certificate request for ${this.id.uri} failed: ${(err as Error).message}`, { cause: err }))
      return
    }
    if (this.closed) return
    this.s.metrics.request('issued')
    const previous = this.svid
    this.svid = svid
    this.attempt = 0
    this.lastAttempt = { at: this.s.clock.now(), ok: true }
    if (this.failures !== null) this.log.info({ failures: this.failures.count, failingSince: new Date(this.failures.since).toISOString() }, 'certificate request succeeded after failures')
    this.failures = null
    this.s.metrics.certificateInUse(this.id.uri, svid.notAfter)
    const renewInMs = this.renewDelay(svid)
    this.log.info({ serial: svid.serial, notAfter: new Date(svid.notAfter).toISOString(), renewInMs, rotated: previous !== null }, 'certificate in use')
    this.watchExpiry(svid)
    this.schedule(renewInMs)
    this.hooks.onRotated(svid, previous)
  }

  private failed (err: FerryError): void {
    this.s.metrics.request(err.code === 'FERRY_ERR_CA_REFUSED' ? 'refused' : err.code === 'FERRY_ERR_CERT' ? 'invalid' : 'unavailable')
    const now = this.s.clock.now()
    const current = this.svid
    if (current !== null) this.s.metrics.renewalFailed()
    this.attempt++
    this.lastAttempt = { at: now, ok: false }
    this.failures = { count: (this.failures?.count ?? 0) + 1, since: this.failures?.since ?? now, code: err.code, error: err.message }
    const delayMs = retryDelay(backoffDelay(this.attempt, this.s.backoff, this.s.random), this.s.backoff.initialMs, current === null ? null : current.notAfter - now)
    this.log.warn({ err: { code: err.code, message: err.message }, attempt: this.attempt, retryInMs: delayMs, servingUntil: current === null ? null : new Date(current.notAfter).toISOString() },
      'certificate request failed; retrying')
    this.schedule(delayMs)
    this.hooks.onRetry(this.attempt, delayMs, err)
  }

  private renewDelay (svid: Svid): number {
    const now = this.s.clock.now()
    const start = Math.max(svid.notBefore, now)
    return Math.max(0, Math.round(start + (svid.notAfter - start) * this.s.renewFraction - now))
  }

  private watchExpiry (svid: Svid): void {
    if (this.expiryTimer !== null) this.s.clock.clearTimer(this.expiryTimer)
    // X.509 validity includes notAfter itself: expired means now > notAfter. A timer can
    // fire a millisecond early by the wall clock (timers run on the monotonic clock), so
    // the callback checks and, if early, waits out the rest.
    this.expiryTimer = this.s.clock.setTimer(() => {
      this.expiryTimer = null
      if (this.closed || this.svid !== svid) return
      if (this.s.clock.now() <= svid.notAfter) {
        this.watchExpiry(svid)
        return
      }
      this.log.error({ serial: svid.serial, notAfter: new Date(svid.notAfter).toISOString() }, 'certificate expired with no successor')
      this.hooks.onExpired(svid)
    }, Math.max(0, svid.notAfter - this.s.clock.now() + 1))
  }
}

/**
 * A retry's delay: the backoff's, but while a certificate is in hand with `msLeft` before
 * it expires, at most a RETRIES_BEFORE_EXPIRY-th of that (never under `floorMs`).
 */
export function retryDelay (backoffMs: number, floorMs: number, msLeft: number | null): number {
  if (msLeft === null || msLeft <= 0) return backoffMs
  return Math.min(backoffMs, Math.max(floorMs, Math.floor(msLeft / RETRIES_BEFORE_EXPIRY)))
}
