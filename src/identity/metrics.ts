import { Counter, Gauge, Registry } from 'prom-client'

// Certificate metrics of an agent, on a registry the caller owns (the agent's admin
// registry; tests make their own).
//   expiry           notAfter of each identity's certificate in hand (Unix seconds)
//   requests         every request to the CA, by result
//   renewalFailures  failed requests for an identity that has a certificate in hand
//                    (a renewal, not a first issue): it grows while the CA is away
//   earliestExpiry   seconds from the scrape until the earliest notAfter among the
//                    certificates in hand, labelled with that identity (negative once it
//                    has expired; absent with no certificate)

export const IDENTITY_METRIC_NAMES = Object.freeze({
  expiry: 'ferry_certificate_expiry_timestamp_seconds',
  requests: 'ferry_certificate_requests_total',
  renewalFailures: 'ferry_certificate_renewal_failures_total',
  earliestExpiry: 'ferry_certificate_earliest_expiry_seconds'
})

export class IdentityMetrics {
  private readonly expiry: Gauge<'spiffe_id'>
  private readonly requests: Counter<'result'>
  private readonly renewalFailures: Counter
  private readonly notAfters = new Map<string, number>()

  /** `now`: the clock the earliest-expiry gauge is read against (milliseconds since the epoch). */
  constructor (readonly registry: Registry = new Registry(), now: () => number = Date.now) {
    const registers = [registry]
    const notAfters = this.notAfters
    this.expiry = new Gauge({ name: IDENTITY_METRIC_NAMES.expiry, help: 'notAfter of the certificate currently served for each identity (Unix seconds)', labelNames: ['spiffe_id'], registers })
    this.requests = new Counter({ name: IDENTITY_METRIC_NAMES.requests, help: 'Certificate requests to the CA, by result (issued, unavailable, refused, invalid)', labelNames: ['result'], registers })
    this.renewalFailures = new Counter({ name: IDENTITY_METRIC_NAMES.renewalFailures, help: 'Failed certificate requests for identities that have a certificate in hand (renewals)', registers })
    // eslint-disable-next-line no-new
    new Gauge({
      name: IDENTITY_METRIC_NAMES.earliestExpiry,
      help: 'Seconds until the earliest notAfter among the certificates in hand, and its identity (negative once expired)',
      labelNames: ['spiffe_id'],
      registers,
      collect () {
        this.reset()
        let earliest: [string, number] | null = null
        for (const e of notAfters) if (earliest === null || e[1] < earliest[1]) earliest = e
        if (earliest !== null) this.set({ spiffe_id: earliest[0] }, Math.floor((earliest[1] - now()) / 1000))
      }
    })
  }

  certificateInUse (spiffeId: string, notAfterMs: number): void {
    this.notAfters.set(spiffeId, notAfterMs)
    this.expiry.set({ spiffe_id: spiffeId }, Math.floor(notAfterMs / 1000))
  }

  identityRemoved (spiffeId: string): void {
    this.notAfters.delete(spiffeId)
    this.expiry.remove({ spiffe_id: spiffeId })
  }

  request (result: 'issued' | 'unavailable' | 'refused' | 'invalid'): void {
    this.requests.inc({ result })
  }

  renewalFailed (): void {
    this.renewalFailures.inc()
  }
}
