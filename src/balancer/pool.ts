import { type Balancer, type BalancerEndpoint, balancerNames, createBalancer } from './balancer'

// One balancer per service port, kept across snapshots: sync() hands each balancer its
// new endpoint list only if the list (by endpoint ids, in order) changed, and drops
// balancers of service ports that are gone. Round-robin position therefore survives a
// snapshot that did not touch the service.
//
// Each service port uses the pool's default balancer unless `policyFor(key)` names
// another (a DestinationRule's loadBalancer for an L4 service). When a key's policy
// changes, its balancer is replaced by a new one of the new kind at the next sync(); a
// name that is not registered keeps the default (names are checked where the
// configuration is validated; a snapshot must never fail on one).

export interface BalancedSet<E extends BalancerEndpoint> {
  readonly key: string
  readonly endpoints: readonly E[]
}

/** A service port's connection balancer by key ("namespace/name:port/family"); null: the default. */
export type PolicyFor = (serviceKey: string) => string | null

interface Slot<E extends BalancerEndpoint> { balancer: Balancer<E>, policy: string, signature: string }

export class BalancerPool<E extends BalancerEndpoint> {
  private readonly slots = new Map<string, Slot<E>>()

  constructor (private readonly policy: string, private policyFor: PolicyFor = () => null) {}

  /** Replaces the per-key policy; takes effect at the next sync(). */
  setPolicyFor (policyFor: PolicyFor): void { this.policyFor = policyFor }

  sync (sets: Iterable<BalancedSet<E>>): void {
    const seen = new Set<string>()
    for (const set of sets) {
      seen.add(set.key)
      const signature = set.endpoints.map((e) => e.id).join(',')
      const policy = this.policyOf(set.key)
      let slot = this.slots.get(set.key)
      if (slot === undefined || slot.policy !== policy) {
        slot = { balancer: createBalancer<E>(policy), policy, signature: '\0' }
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

  /** The connection picked for `key` on `e` ended: balancers that count connections are told. */
  release (key: string, e: E): void {
    this.slots.get(key)?.balancer.release?.(e)
  }

  /** Whether the balancer of `key` counts open connections (wants release()). */
  countsConnections (key: string): boolean { return this.slots.get(key)?.balancer.release !== undefined }

  /** The connection balancer's name for `key`, or null when the key has none. */
  policyOfKey (key: string): string | null { return this.slots.get(key)?.policy ?? null }

  size (): number { return this.slots.size }

  private policyOf (key: string): string {
    const wanted = this.policyFor(key)
    return wanted !== null && balancerNames().includes(wanted) ? wanted : this.policy
  }
}
