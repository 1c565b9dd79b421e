import type { LoadBalancerPolicy } from '../routing/model'

// Which connection balancer (registered in index.ts) an L4 service uses when a
// DestinationRule sets its trafficPolicy.loadBalancer. An L4 service has no requests,
// so the per-request policies map to their per-connection meaning; P2C over EWMA (the
// default when no DestinationRule says otherwise) and consistent hashing have none here
// and leave the service on the default connection balancer (round robin).

export function connectionBalancerFor (policy: LoadBalancerPolicy): string | null {
  switch (policy.type) {
    case 'ROUND_ROBIN': return 'round_robin'
    case 'LEAST_REQUEST': return 'least_request'
    case 'RANDOM': return 'random'
    case 'P2C_PEAK_EWMA': return null
    case 'CONSISTENT_HASH': return null
  }
}
