import type { BalancerEndpoint } from './balancer'
import type { PickInput } from './request'
import { RequestBalancerBase } from './request-base'

// ROUND_ROBIN per request: the next eligible endpoint in list order. An ineligible one is
// skipped for this request only; the rotation then continues after the endpoint taken.
// When the list changes, the rotation carries on from the endpoint that was next if it
// is still there (as the connection round robin does), so a snapshot that adds or
// removes some other pod does not send the next requests back to the first.

export class RoundRobinRequestBalancer<E extends BalancerEndpoint> extends RequestBalancerBase<E> {
  private next = 0

  protected override updated (previous: readonly E[]): void {
    const n = this.endpoints.length
    const upcoming = previous.length === 0 ? undefined : previous[this.next % previous.length]
    if (n === 0) { this.next = 0; return }
    let at = -1
    if (upcoming !== undefined) for (let i = 0; i < n; i++) if (this.endpoints[i].id === upcoming.id) { at = i; break }
    this.next = at >= 0 ? at : this.next % n
  }

  pick (input: PickInput<E>): E | null {
    const n = this.endpoints.length
    for (let k = 0, i = this.next; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      if (!input.eligible(this.endpoints[i])) continue
      this.next = i + 1 === n ? 0 : i + 1
      return this.picked(i)
    }
    return null
  }
}
