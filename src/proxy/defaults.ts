// Data-path defaults. Ports live in src/config/env.ts; these are timings.
export const PROXY_DEFAULTS = Object.freeze({
  /** Upstream TCP connect timeout (Envoy/Istio default: 10 s). */
  connectTimeoutMs: 10_000
})
