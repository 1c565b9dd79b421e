import type { BalancerEndpoint } from './balancer'
import { hash32, hash32Point } from './hash'
import type { PickInput } from './request'
import { RequestBalancerBase, type RequestBalancerOptions } from './request-base'

// Consistent hashing (Istio's consistentHash: header, cookie, source IP or query
// parameter — the caller hashes nothing, it passes the input string) over a hash ring,
// as Envoy's RING_HASH does:
//   ring      each endpoint is placed at 160+ points, hash32("id#k") for k = 0, 1, …; the
//             points are sorted. Placement depends only on the endpoint's own id, so
//             when another endpoint comes or goes only the keys that were on it (or
//             that the newcomer now owns) move: about 1/n of them.
//   pick      the first point at or after hash32(input), clockwise; if that endpoint is
//             not eligible (ejected, already tried), the next distinct endpoint along the
//             ring — so a key's requests fail over to the same second choice everywhere.
//   no input  (no header, cookie or address to hash) an eligible endpoint at random.
// The ring is rebuilt on update() only; a pick is a binary search plus a short walk,
// with no allocation.

/** Envoy's minimum ring size is 1024; with few endpoints each gets more points for an even split. */
export const MIN_RING_SIZE = 1024
export const MIN_POINTS_PER_ENDPOINT = 160
/** Points on the ring at most (fewer per endpoint beyond 6,553 endpoints). */
const MAX_RING_SIZE = 1 << 20
const POSITION_SPAN = MAX_RING_SIZE

export interface RingHashOptions extends RequestBalancerOptions {
  readonly minRingSize?: number
}

export class RingHashBalancer<E extends BalancerEndpoint> extends RequestBalancerBase<E> {
  private points = new Uint32Array(0)
  /** The endpoint index each point belongs to. */
  private owners = new Int32Array(0)
  /** Per endpoint: the pick number it was last checked in (to check each endpoint once per walk). */
  private checked = new Uint32Array(0)
  private walk = 0
  private readonly minRingSize: number

  constructor (options: RingHashOptions = {}) {
    super(options)
    this.minRingSize = options.minRingSize ?? MIN_RING_SIZE
  }

  protected override updated (): void {
    const n = this.endpoints.length
    const per = n === 0 ? 0 : Math.min(Math.floor(MAX_RING_SIZE / n), Math.max(MIN_POINTS_PER_ENDPOINT, Math.ceil(this.minRingSize / n)))
    const size = n * per
    // Each point as one number, hash × 2^20 + its position (exact below 2^53), so that a
    // native numeric sort orders the ring; equal hashes (rare) by position, which is the
    // same in every worker given the same (sorted) list.
    const keyed = new Float64Array(size)
    for (let i = 0, p = 0; i < n; i++) {
      const id = this.endpoints[i].id
      for (let k = 0; k < per; k++, p++) keyed[p] = hash32Point(id, k) * POSITION_SPAN + p
    }
    keyed.sort()
    this.points = new Uint32Array(size)
    this.owners = new Int32Array(size)
    for (let q = 0; q < size; q++) {
      const p = keyed[q] % POSITION_SPAN
      this.points[q] = (keyed[q] - p) / POSITION_SPAN
      this.owners[q] = Math.floor(p / per)
    }
    this.checked = new Uint32Array(n)
    this.walk = 0
  }

  pick (input: PickInput<E>): E | null {
    if (input.hash === null) return this.picked(this.randomEligible(input))
    return this.picked(this.onRing(hash32(input.hash), input))
  }

  /** The endpoint that owns `h`, or the next eligible one along the ring; -1 when none is eligible. */
  private onRing (h: number, input: PickInput<E>): number {
    const points = this.points
    const size = points.length
    const n = this.endpoints.length
    if (size === 0) return -1
    // First point ≥ h (wrapping to 0).
    let lo = 0
    let hi = size
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid] < h) lo = mid + 1
      else hi = mid
    }
    let at = lo === size ? 0 : lo
    const first = this.owners[at]
    if (input.eligible(this.endpoints[first])) return first
    // Walk on, checking each endpoint once.
    this.walk = this.walk === 0xffffffff ? 1 : this.walk + 1
    if (this.walk === 1) this.checked.fill(0)
    this.checked[first] = this.walk
    let seen = 1
    for (let k = 1; k < size && seen < n; k++) {
      at = at + 1 === size ? 0 : at + 1
      const i = this.owners[at]
      if (this.checked[i] === this.walk) continue
      this.checked[i] = this.walk
      seen++
      if (input.eligible(this.endpoints[i])) return i
    }
    return -1
  }
}
