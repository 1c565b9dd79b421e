import { Counter, Gauge, Registry } from 'prom-client'

// Certificate metrics of an agent, on a registry the caller owns (the agent's admin
// registry; tests make their own).

export const IDENTITY_METRIC_NAMES = Object.freeze({
  expiry: 'ferry_certificate_expiry_timestamp_seconds',
  requests: 'ferry_certificate_requests_total'
})

export class IdentityMetrics {
  private readonly expiry: Gauge<'spiffe_id'>
  private readonly requests: Counter<'result'>

  constructor (readonly registry: Registry = new Registry()) {
    const registers = [registry]
    this.expiry = new Gauge({ name: IDENTITY_METRIC_NAMES.expiry, help: 'notAfter of the certificate currently served for each identity (Unix seconds)', labelNames: ['spiffe_id'], registers })
    this.requests = new Counter({ name: IDENTITY_METRIC_NAMES.requests, help: 'Certificate requests to the CA, by result (issued, unavailable, refused, invalid)', labelNames: ['result'], registers })
  }

  certificateInUse (spiffeId: string, notAfterMs: number): void {
    this.expiry.set({ spiffe_id: spiffeId }, Math.floor(notAfterMs / 1000))
  }

  identityRemoved (spiffeId: string): void {
    this.expiry.remove({ spiffe_id: spiffeId })
  }

  request (result: 'issued' | 'unavailable' | 'refused' | 'invalid'): void {
    this.requests.inc({ result })
  }
}
