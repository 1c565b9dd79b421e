import type { BalancerEndpoint } from '../balancer/balancer'
import type { PickInput, Placed, RequestBalancer } from '../balancer/request'

// Round robin per request, skipping endpoints the attempt may not use: the router's
// balancer where no per-request balancer registry is given (src/worker/data-plane.ts
// requestBalancers). It keeps no latency estimate.

const NO_OP: Placed = Object.freeze({ end: () => {} })

export function roundRobinRequests<E extends BalancerEndpoint> (): RequestBalancer<E> {
  let list: readonly E[] = []
  let next = 0
  return {
    update: (endpoints) => { list = endpoints; next = list.length === 0 ? 0 : next % list.length },
    pick: (input: PickInput<E>) => {
      for (let i = 0; i < list.length; i++) {
        const e = list[(next + i) % list.length]
        if (input.eligible(e)) { next = (next + i + 1) % list.length; return e }
      }
      return null
    },
    place: () => NO_OP,
    describe: () => list.map((e) => ({ id: e.id, ewmaMs: null, pending: 0 }))
  }
}
