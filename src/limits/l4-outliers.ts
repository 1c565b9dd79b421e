import type { ServicePortEntry } from '../discovery/service-index'
import type { L4OutlierLookup } from '../proxy/route-table'
import type { OutlierDetection } from '../routing/model'
import { backendKeyOf, type NodeLimits } from './node-limits'

// Outlier detection of L4 connections (src/proxy/route-table.ts): a Service port's
// DestinationRule outlierDetection, if any, as a node-wide tracker keyed like the L7
// router's backend without a subset ("namespace/name:port"), so a dead endpoint found by
// either kind of traffic is skipped by both. Give RouteTable.setOutlierDetection what
// this returns for each configuration: null when no Service has outlier detection, which
// leaves every pick the balancer's alone.

/** "namespace/name:port" → the policy (DestinationRule trafficPolicy.outlierDetection, port-level merged). */
export type L4OutlierPolicies = ReadonlyMap<string, OutlierDetection>

export function l4OutlierLookup (limits: NodeLimits, policies: L4OutlierPolicies): L4OutlierLookup | null {
  if (policies.size === 0) return null
  return (entry: ServicePortEntry) => {
    const key = backendKeyOf({ service: `${entry.service.namespace}/${entry.service.name}`, port: entry.port.port, subset: null })
    const policy = policies.get(key)
    return policy === undefined ? null : limits.outliersFor(key, policy, () => entry.endpoints.length)
  }
}
