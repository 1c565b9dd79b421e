import type { OutlierDetection } from '../routing/model'
import type { SharedTable } from './shared-table'
import type { EndpointResult, OutlierTracker } from './types'

// Outlier detection of one backend's endpoints, node-wide, with Envoy's semantics as
// Istio's DestinationRule configures them:
//
// - Consecutive errors per endpoint: a 5xx counts toward consecutive5xxErrors; a gateway
//   error (502, 503, 504) toward both consecutive5xxErrors and consecutiveGatewayErrors; a
//   local-origin failure (connect failure, reset, timeout) toward
//   consecutiveLocalOriginFailures when that is set (Envoy's split mode), else as a
//   gateway error (Envoy maps it to a 503). A success resets the endpoint's counts; a
//   non-gateway 5xx resets the gateway count. A count reaching its threshold ejects (and
//   every further error tries again while an ejection was refused). null or 0: off.
// - The ejection lasts baseEjectionTime × the endpoint's ejections (this one included),
//   capped at max(baseEjectionTime, 300 s) (Envoy's max_ejection_time default). Its
//   counts are reset when ejected. It is back when the time is over: the next request may
//   go there, and it takes the threshold again to eject it.
// - Its ejection count decays: one less per `interval` it spent not ejected since its
//   last ejection ended (Envoy decrements it on each interval timer; computed here when
//   next needed, no timer).
// - At most maxEjectionPercent of the backend's endpoints ejected at once (Envoy: an
//   ejection is refused when (ejected + 1) / endpoints > max %), and never the last
//   healthy one. When fewer than minHealthPercent of the endpoints are healthy, detection
//   is off: nothing counts as ejected (Istio's panic-mode rule).
//
// The backend's endpoint count comes from `endpointCount` (the tracker's caller knows
// its endpoints). Unknown (no function given): at most one endpoint of the backend is
// ejected at a time.
//
// Memory (shared-table.ts): one slot per endpoint (counts, ejection end, ejections) and
// one per backend holding the end times of its current ejections (RING entries: at most
// that many ejected at once; more are refused). An endpoint's ejection end is written to
// both, so "how many are ejected now" is a walk of RING words, with no timer and no
// counter to keep in step. Times are wall-clock milliseconds truncated to 32 bits,
// compared modulo 2^32; 0 marks "never". An end further ahead than the longest ejection
// is taken as over (a value from weeks ago aliasing).

const C5XX = 0
const CGATEWAY = 1
const CLOCAL = 2
const UNTIL = 3
const EJECTIONS = 4
/** Payload words of an endpoint's slot. */
export const ENDPOINT_WORDS = 5
/** Ejections a backend may have at once (its slot's payload, in words). */
export const RING = 32
/** Envoy's max_ejection_time default: the cap of base × ejections when the base is below it. */
const MAX_EJECTION_MS = 300_000
/** Longer than any ejection (a table-wide bound: the busy test does not know the policy). */
const BUSY_HORIZON_MS = 86_400_000

export interface OutlierTables {
  readonly endpoints: SharedTable
  readonly backends: SharedTable
}

/** An endpoint slot is busy while it is ejected (or may be: the longest ejection is assumed). */
export const endpointBusy = (w: Int32Array, base: number, nowMs: number): boolean => running(Atomics.load(w, base + UNTIL), nowMs)

/** A backend slot is busy while any of its ejections runs. */
export const backendBusy = (w: Int32Array, base: number, nowMs: number): boolean => {
  for (let i = 0; i < RING; i++) if (running(Atomics.load(w, base + i), nowMs)) return true
  return false
}

function running (until: number, nowMs: number): boolean {
  return until !== 0 && ahead(until, nowMs | 0, BUSY_HORIZON_MS)
}

export class SharedOutlierTracker implements OutlierTracker {
  private readonly horizon: number

  constructor (
    private readonly tables: OutlierTables,
    private readonly backendKey: string,
    private readonly policy: OutlierDetection,
    private readonly endpointCount: (() => number) | null = null
  ) {
    this.horizon = Math.max(policy.baseEjectionTimeMs, MAX_EJECTION_MS)
  }

  /** `endpointCount`: the backend's endpoints now (overrides the tracker's function). */
  ejected (endpointId: string, nowMs: number, endpointCount?: number): boolean {
    const w = this.tables.endpoints.words
    const base = this.tables.endpoints.find(this.endpointKey(endpointId), nowMs)
    if (base < 0) return false
    const until = Atomics.load(w, base + UNTIL)
    if (until === 0 || !ahead(until, nowMs | 0, this.horizon)) return false
    const min = this.policy.minHealthPercent
    if (min > 0) {
      const n = endpointCount ?? this.endpointCount?.() ?? null
      if (n !== null && n > 0 && 100 * (n - this.active(nowMs)) / n < min) return false
    }
    return true
  }

  report (endpointId: string, result: EndpointResult, nowMs: number, endpointCount?: number): void {
    const p = this.policy
    const w = this.tables.endpoints.words
    const base = this.tables.endpoints.find(this.endpointKey(endpointId), nowMs)
    if (base < 0) return
    if (result === 'success') {
      for (const f of [C5XX, CGATEWAY, CLOCAL]) if (Atomics.load(w, base + f) !== 0) Atomics.store(w, base + f, 0)
      return
    }
    let trip = false
    const split = on(p.consecutiveLocalOriginFailures)
    if (result === 'local_failure' && split) {
      trip = Atomics.add(w, base + CLOCAL, 1) + 1 >= (p.consecutiveLocalOriginFailures as number)
    } else {
      const gateway = result === 'gateway_error' || result === 'local_failure'
      const n5 = Atomics.add(w, base + C5XX, 1) + 1
      if (on(p.consecutive5xxErrors) && n5 >= (p.consecutive5xxErrors as number)) trip = true
      if (gateway) {
        const ng = Atomics.add(w, base + CGATEWAY, 1) + 1
        if (on(p.consecutiveGatewayErrors) && ng >= (p.consecutiveGatewayErrors as number)) trip = true
      } else if (Atomics.load(w, base + CGATEWAY) !== 0) {
        Atomics.store(w, base + CGATEWAY, 0)
      }
    }
    if (trip) this.eject(base, nowMs, endpointCount ?? this.endpointCount?.() ?? null)
  }

  /** Endpoints of the backend ejected now. */
  active (nowMs: number): number {
    const base = this.tables.backends.find(this.backendKey, nowMs)
    if (base < 0) return 0
    const w = this.tables.backends.words
    const t = nowMs | 0
    let n = 0
    for (let i = 0; i < RING; i++) {
      const until = Atomics.load(w, base + i)
      if (until !== 0 && ahead(until, t, this.horizon)) n++
    }
    return n
  }

  /** An endpoint's ejections so far, decayed to `nowMs` (for /debug/config and tests). */
  ejections (endpointId: string, nowMs: number): number {
    const base = this.tables.endpoints.find(this.endpointKey(endpointId), nowMs)
    return base < 0 ? 0 : this.decayed(base, nowMs | 0)
  }

  private eject (base: number, nowMs: number, count: number | null): void {
    const w = this.tables.endpoints.words
    const t = nowMs | 0
    const old = Atomics.load(w, base + UNTIL)
    if (old !== 0 && ahead(old, t, this.horizon)) return
    if (!this.mayEject(this.active(nowMs), count)) return
    const ejections = this.decayed(base, t) + 1
    const duration = Math.min(this.policy.baseEjectionTimeMs * ejections, this.horizon)
    const until = ((t + duration) | 0) || 1
    // One thread ejects it; the others saw it ejected or lost this exchange.
    if (Atomics.compareExchange(w, base + UNTIL, old, until) !== old) return
    const entry = this.claimEntry(nowMs, until)
    // Out of entries, or another endpoint was ejected meanwhile and this one is now too many: not ejected.
    if (entry < 0 || !this.mayEject(this.active(nowMs) - 1, count)) {
      if (entry >= 0) Atomics.compareExchange(this.tables.backends.words, entry, until, 0)
      Atomics.compareExchange(w, base + UNTIL, until, old)
      return
    }
    Atomics.store(w, base + EJECTIONS, ejections)
    for (const f of [C5XX, CGATEWAY, CLOCAL]) Atomics.store(w, base + f, 0)
  }

  /** One more ejection is allowed with `active` already ejected. */
  private mayEject (active: number, count: number | null): boolean {
    if (count === null) return active === 0
    if (active + 1 >= count) return false
    return 100 * (active + 1) / count <= this.policy.maxEjectionPercent
  }

  /** Takes a free RING entry of the backend for an ejection ending at `until`; its word index or -1. */
  private claimEntry (nowMs: number, until: number): number {
    const base = this.tables.backends.find(this.backendKey, nowMs)
    if (base < 0) return -1
    const w = this.tables.backends.words
    const t = nowMs | 0
    for (let i = 0; i < RING; i++) {
      const held = Atomics.load(w, base + i)
      if (held !== 0 && ahead(held, t, this.horizon)) continue
      if (Atomics.compareExchange(w, base + i, held, until) === held) return base + i
    }
    return -1
  }

  private decayed (base: number, t: number): number {
    const w = this.tables.endpoints.words
    const n = Atomics.load(w, base + EJECTIONS)
    const until = Atomics.load(w, base + UNTIL)
    if (n === 0 || until === 0) return n
    const since = (t - until) | 0
    if (since <= 0) return n
    return Math.max(0, n - Math.floor(since / Math.max(1, this.policy.intervalMs)))
  }

  private endpointKey (endpointId: string): string { return `${this.backendKey}|${endpointId}` }
}

/** `until` is after `t` by at most `horizon` (32-bit times, modulo 2^32). */
function ahead (until: number, t: number, horizon: number): boolean {
  const d = (until - t) | 0
  return d > 0 && d <= horizon
}

function on (threshold: number | null): boolean { return threshold !== null && threshold > 0 }
