import { parseDuration } from './duration'

// Workload certificate lifetimes, for every command that takes one (`ferry controller`
// and `ferry agent` --cert-ttl, `ferry lab up --cert-ttl`, `ferry install --set
// controller.certTtl`) and for the certificate manager: Istio's default of a day; at
// least a second (the controller signs whole seconds), at most a year.

export const CERT_TTL = Object.freeze({
  defaultMs: 24 * 3_600_000,
  minMs: 1000,
  maxMs: 365 * 86_400_000
})

/** Milliseconds of a --cert-ttl value, or FERRY_ERR_INVALID_ARG naming `what`. */
export function parseCertTtl (text: string, what: string): number {
  return parseDuration(text, what, CERT_TTL)
}
