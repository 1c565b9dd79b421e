import type { Balancer, BalancerEndpoint } from './balancer'

// Round robin over a service port's endpoints. When the list changes, the rotation
// carries on from the endpoint that was next if it is still there, so a snapshot that
// adds or removes some other pod does not send the next connections back to the first.

export class RoundRobin<E extends BalancerEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = []
  private next = 0

  update (endpoints: readonly E[]): void {
    const upcoming = this.endpoints.length === 0 ? undefined : this.endpoints[this.next % this.endpoints.length]
    this.endpoints = endpoints
    if (endpoints.length === 0) { this.next = 0; return }
    const at = upcoming === undefined ? -1 : endpoints.findIndex((e) => e.id === upcoming.id)
    this.next = at >= 0 ? at : this.next % endpoints.length
  }

  pick (): E | null {
    const n = this.endpoints.length
    if (n === 0) return null
    const e = this.endpoints[this.next]
    this.next = this.next + 1 === n ? 0 : this.next + 1
    return e
  }
}
