import type { BalancerEndpoint } from './balancer'
import type { PickInput } from './request'
import { type EndpointLoad, RequestBalancerBase, type RequestBalancerOptions } from './request-base'

// Power of two choices over peak-EWMA latency, the way Linkerd balances requests (tower's
// PeakEwma, after Finagle):
//   estimate  each endpoint's latency estimate starts at DEFAULT_RTT_MS. A request that
//             ends slower than the estimate replaces it (peak-sensitive: one slow answer
//             is believed at once); a faster one pulls it down as an exponentially
//             weighted average, weighted by the time since the last update (decay
//             constant DECAY_MS): the longer since we last learned something, the more
//             the new sample counts.
//   decay     when an endpoint is weighed, its estimate first decays towards zero for
//             the time since its last update, so an endpoint that was slow a while ago
//             and has not been tried since is eventually tried again.
//   cost      estimate × (pending + 1): latency scaled by the requests already waiting
//             on it, so a fast endpoint that is piling up work stops looking fast.
//   pick      two distinct eligible endpoints at random; the cheaper (the first on a tie).
// A failed request's duration says little about the endpoint's speed (a refused
// connection is fast): it may raise the estimate (a peak) but never lowers it.

/** Linkerd's default RTT for an endpoint with no sample yet. */
export const DEFAULT_RTT_MS = 30
/** Linkerd's decay constant: a sample's weight grows with the time since the last one (1 − e^(−Δt/τ)). */
export const DECAY_MS = 10_000

export interface PeakEwmaOptions extends RequestBalancerOptions {
  readonly defaultRttMs?: number
  readonly decayMs?: number
}

export class PeakEwmaBalancer<E extends BalancerEndpoint> extends RequestBalancerBase<E> {
  private readonly decayMs: number
  /** The pick's time, read once per pick for both candidates. */
  private pickNowMs = 0

  constructor (options: PeakEwmaOptions = {}) {
    super(options, options.defaultRttMs ?? DEFAULT_RTT_MS)
    this.decayMs = options.decayMs ?? DECAY_MS
  }

  pick (input: PickInput<E>): E | null {
    this.pickNowMs = this.now()
    return this.picked(this.powerOfTwo(input, this.cheaper))
  }

  /** Bound once: passing it to powerOfTwo allocates nothing per pick. */
  private readonly cheaper = (a: number, b: number): boolean => this.cost(this.loads[a]) < this.cost(this.loads[b])

  // Times may be NaN (not known yet: no request placed so far); every comparison with
  // NaN is false, so an unknown time neither decays nor stamps anything.
  private cost (load: EndpointLoad): number {
    const nowMs = this.pickNowMs
    if (Number.isNaN(load.updatedAtMs)) {
      load.updatedAtMs = nowMs
    } else {
      const elapsed = nowMs - load.updatedAtMs
      if (elapsed > 0) {
        load.rttMs *= Math.exp(-elapsed / this.decayMs)
        load.updatedAtMs = nowMs
      }
    }
    return load.rttMs * (load.pending + 1)
  }

  override settle (load: EndpointLoad, startMs: number, nowMs: number, failed: boolean): void {
    const rtt = nowMs > startMs ? nowMs - startMs : 0
    if (rtt > load.rttMs) {
      load.rttMs = rtt
    } else if (!failed) {
      const since = Number.isNaN(load.updatedAtMs) ? startMs : load.updatedAtMs
      const elapsed = nowMs - since
      const decay = elapsed > 0 ? Math.exp(-elapsed / this.decayMs) : 1
      load.rttMs = load.rttMs * decay + rtt * (1 - decay)
    }
    if (!(nowMs <= load.updatedAtMs)) load.updatedAtMs = nowMs
  }

  override describe (): ReadonlyArray<{ readonly id: string, readonly ewmaMs: number | null, readonly pending: number }> {
    const nowMs = this.now()
    return this.loads.map((l) => ({
      id: l.id,
      ewmaMs: nowMs > l.updatedAtMs ? l.rttMs * Math.exp(-(nowMs - l.updatedAtMs) / this.decayMs) : l.rttMs,
      pending: l.pending
    }))
  }
}
