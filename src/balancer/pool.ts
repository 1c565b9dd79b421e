import { type Balancer, type BalancerEndpoint, createBalancer } from './balancer'

// One balancer per service port, kept across snapshots: sync() hands each balancer its
// new endpoint list only if the list (by endpoint ids, in order) changed, and drops
// balancers of service ports that are gone. Round-robin position therefore survives a
// snapshot that did not touch the service.

export interface BalancedSet<E extends BalancerEndpoint> {
  readonly key: string
  readonly endpoints: readonly E[]
}

interface Slot<E extends BalancerEndpoint> { balancer: Balancer<E>, signature: string }

export class BalancerPool<E extends BalancerEndpoint> {
  private readonly slots = new Map<string, Slot<E>>()

  constructor (private readonly policy: string) {}

  sync (sets: Iterable<BalancedSet<E>>): void {
    const seen = new Set<string>()
    for (const set of sets) {
      seen.add(set.key)
      const signature = set.endpoints.map((e) => e.id).join(',')
      let slot = this.slots.get(set.key)
      if (slot === undefined) {
        slot = { balancer: createBalancer<E>(this.policy), signature: '\0' }
        this.slots.set(set.key, slot)
      }
      if (slot.signature !== signature) {
        slot.balancer.update(set.endpoints)
        slot.signature = signature
      }
    }
    for (const key of this.slots.keys()) if (!seen.has(key)) this.slots.delete(key)
  }

  pick (key: string): E | null {
    return this.slots.get(key)?.balancer.pick() ?? null
  }

  size (): number { return this.slots.size }
}
