import type { BalancerEndpoint } from './balancer'
import type { PickInput, Placed, RequestBalancer } from './request'

// What every per-request balancer shares: the endpoint list, each endpoint's load
// (requests placed and not yet ended, and the latency estimate the P2C-EWMA balancer
// keeps), placing and ending requests, and drawing eligible endpoints at random without
// allocating. A subclass only says how to pick.
//
// An endpoint's load is kept by id across update(), so a snapshot that adds or removes
// some other pod keeps what was learned about this one. A request placed on an endpoint
// that has since left the list ends against the load it was placed on, harmlessly.

export interface RequestBalancerOptions {
  /** A uniform number in [0, 1); tests inject a seeded source. */
  readonly random?: () => number
  /**
   * Monotonic milliseconds, the same clock the caller passes to place() and end(), read
   * once per pick by the balancers that decay an estimate over time. By default a pick
   * reads no clock: it uses the latest time the caller passed to place() or end(), which
   * is at most one request old under load (reading a clock per request is not free).
   */
  readonly now?: () => number
}

/** One endpoint's load, kept by id. */
export class EndpointLoad {
  /** Requests placed and not yet ended. */
  pending = 0
  /** The latency estimate in ms (P2C-EWMA only; the others leave it at its start value). */
  rttMs: number
  /** When rttMs was last updated or decayed (the balancer's clock); NaN: not yet known. */
  updatedAtMs: number
  constructor (readonly id: string, rttMs: number, nowMs: number) {
    this.rttMs = rttMs
    this.updatedAtMs = nowMs
  }
}

/** Subclasses that learn from ended requests implement this. */
interface Settler {
  settle (load: EndpointLoad, startMs: number, nowMs: number, failed: boolean): void
  saw (nowMs: number): void
}

class Placement implements Placed {
  private ended = false
  constructor (private readonly settler: Settler, private readonly load: EndpointLoad, private readonly startMs: number) {}

  end (nowMs: number, failed: boolean): void {
    // The contract says once; a second call must not make pending negative.
    if (this.ended) return
    this.ended = true
    this.load.pending--
    this.settler.settle(this.load, this.startMs, nowMs, failed)
    this.settler.saw(nowMs)
  }
}

/** The default source of randomness. */
export const defaultRandom = Math.random

export abstract class RequestBalancerBase<E extends BalancerEndpoint> implements RequestBalancer<E>, Settler {
  protected endpoints: readonly E[] = []
  protected loads: EndpointLoad[] = []
  private byId = new Map<string, EndpointLoad>()
  /** Eligible indices of the current pick (reused: no allocation per pick). */
  protected scratch = new Int32Array(0)
  /** The index the last pick returned, so place() finds its load without a lookup. */
  protected lastPicked = -1
  protected readonly random: () => number
  private readonly clock: (() => number) | null
  /** The latest time passed to place() or end(); NaN before the first. */
  private latestMs = NaN

  constructor (options: RequestBalancerOptions = {}, private readonly initialRttMs = 0) {
    this.random = options.random ?? defaultRandom
    this.clock = options.now ?? null
  }

  /** The current time on the caller's clock (see RequestBalancerOptions.now); NaN when not yet known. */
  protected now (): number { return this.clock === null ? this.latestMs : this.clock() }

  /** Keeps the latest time the caller passed. */
  saw (nowMs: number): void { if (!(nowMs <= this.latestMs)) this.latestMs = nowMs }

  update (endpoints: readonly E[]): void {
    const previous = this.endpoints
    const byId = new Map<string, EndpointLoad>()
    const loads: EndpointLoad[] = new Array(endpoints.length)
    let nowMs: number | null = null
    for (let i = 0; i < endpoints.length; i++) {
      const id = endpoints[i].id
      let load = this.byId.get(id) ?? byId.get(id)
      if (load === undefined) {
        nowMs ??= this.now()
        load = new EndpointLoad(id, this.initialRttMs, nowMs)
      }
      byId.set(id, load)
      loads[i] = load
    }
    this.endpoints = endpoints
    this.loads = loads
    this.byId = byId
    if (this.scratch.length < endpoints.length) this.scratch = new Int32Array(endpoints.length)
    this.lastPicked = -1
    this.updated(previous)
  }

  /** After update(): the subclass rebuilds what it derives from the list. */
  protected updated (_previous: readonly E[]): void {}

  abstract pick (input: PickInput<E>): E | null

  place (e: E, nowMs: number): Placed {
    this.saw(nowMs)
    const load = this.loadOf(e, nowMs)
    load.pending++
    return new Placement(this, load, nowMs)
  }

  settle (_load: EndpointLoad, _startMs: number, _nowMs: number, _failed: boolean): void {}

  describe (): ReadonlyArray<{ readonly id: string, readonly ewmaMs: number | null, readonly pending: number }> {
    return this.loads.map((l) => ({ id: l.id, ewmaMs: null, pending: l.pending }))
  }

  /** The pick's result, remembered for place(). */
  protected picked (i: number): E | null {
    if (i < 0) return null
    this.lastPicked = i
    return this.endpoints[i]
  }

  private loadOf (e: E, nowMs: number): EndpointLoad {
    const i = this.lastPicked
    if (i >= 0 && i < this.endpoints.length && this.endpoints[i] === e) return this.loads[i]
    // Placed without our pick (or not the last one): by id; an endpoint not in the list
    // gets a load of its own that nothing else reads.
    return this.byId.get(e.id) ?? new EndpointLoad(e.id, this.initialRttMs, nowMs)
  }

  /** A uniform integer in [0, n). */
  protected randomIndex (n: number): number {
    const i = Math.floor(this.random() * n)
    return i < n ? i : n - 1
  }

  /** Fills `scratch` with the eligible indices; returns how many. */
  protected collectEligible (input: PickInput<E>): number {
    const eps = this.endpoints
    let m = 0
    for (let i = 0; i < eps.length; i++) if (input.eligible(eps[i])) this.scratch[m++] = i
    return m
  }

  /** A uniformly random eligible index, or -1. One draw when it lands on an eligible endpoint. */
  protected randomEligible (input: PickInput<E>): number {
    const n = this.endpoints.length
    if (n === 0) return -1
    const i = this.randomIndex(n)
    if (input.eligible(this.endpoints[i])) return i
    const m = this.collectEligible(input)
    return m === 0 ? -1 : this.scratch[this.randomIndex(m)]
  }

  /**
   * Power of two choices: two distinct eligible endpoints drawn uniformly, the one
   * `better` prefers (the first on a tie); the only eligible one; or -1. The common case
   * (both draws eligible) costs two draws and two eligibility checks; otherwise the
   * eligible ones are collected and the pair drawn from them, which keeps every pair of
   * eligible endpoints equally likely.
   */
  protected powerOfTwo (input: PickInput<E>, better: (a: number, b: number) => boolean): number {
    const n = this.endpoints.length
    if (n === 0) return -1
    if (n === 1) return input.eligible(this.endpoints[0]) ? 0 : -1
    let a = this.randomIndex(n)
    let b = this.randomIndex(n - 1)
    if (b >= a) b++
    if (!input.eligible(this.endpoints[a]) || !input.eligible(this.endpoints[b])) {
      const m = this.collectEligible(input)
      if (m === 0) return -1
      if (m === 1) return this.scratch[0]
      const x = this.randomIndex(m)
      let y = this.randomIndex(m - 1)
      if (y >= x) y++
      a = this.scratch[x]
      b = this.scratch[y]
    }
    return better(b, a) ? b : a
  }
}
