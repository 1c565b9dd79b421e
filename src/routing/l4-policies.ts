import { connectionBalancerFor } from '../balancer/connection-policy'
import type { PolicyFor } from '../balancer/pool'
import type { ServiceIndex } from '../discovery/service-index'
import type { L4OutlierPolicies } from '../limits/l4-outliers'
import type { OutlierDetection } from './model'
import type { RoutingTable } from './routing-table'

// What a DestinationRule asks of a Service's L4 connections (src/proxy/route-table.ts):
// the connection balancer its loadBalancer names (round_robin, least_request, random;
// the per-request ones leave the default) and its outlier detection, keyed as the L7
// router keys a backend without subset ("namespace/name:port"). Services with no
// DestinationRule are in neither: their picks stay the default balancer's alone.

export interface L4Policies {
  readonly policyFor: PolicyFor
  readonly outliers: L4OutlierPolicies
}

export function l4Policies (table: RoutingTable, index: ServiceIndex): L4Policies {
  const balancers = new Map<string, string>()
  const outliers = new Map<string, OutlierDetection>()
  for (const entry of index.entries()) {
    const service = `${entry.service.namespace}/${entry.service.name}`
    const policy = table.policyFor({ service, port: entry.port.port, subset: null })
    if (policy.source === null) continue
    const name = connectionBalancerFor(policy.loadBalancer)
    if (name !== null) balancers.set(entry.key, name)
    if (policy.outlierDetection !== null) outliers.set(`${service}:${entry.port.port}`, policy.outlierDetection)
  }
  return { policyFor: (key) => balancers.get(key) ?? null, outliers }
}
