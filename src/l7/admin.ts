import type { ClusterSnapshot, Pod } from '../discovery/model'
import { type L7CheckLine, l7ForDestination } from './check'
import { l7PolicyLookupOf } from './policy-lookup'
import { tableOf } from '../routing/admin'
import { L7Table, l7TableFor } from './table'
import { type L7View, l7View } from './view'

// The agent admin server's L7 answers (src/agent/admin-server.ts): the `l7` section of
// /debug/config and the L7 lines of /debug/authz (`ferry policy check --lab/--agent`),
// from the live cluster snapshot, this node's enrolled pods and the authorizer's L7
// policies.

export interface L7AdminDeps {
  readonly node: string
  readonly cluster: () => ClusterSnapshot | null
  readonly enroller: { enrolledPods: () => ReadonlyArray<{ readonly plan: { readonly pod: Pod } }> }
  /** The InboundAuthorizer: its l7PolicyFor, when it has one, engages L7 at the destination. */
  readonly authz: object
}

/** null until discovery has a snapshot. */
export function l7ConfigSection (deps: L7AdminDeps): L7View | null {
  const cluster = deps.cluster()
  if (cluster === null) return null
  // A route makes its Service port L7 (as in every worker: src/worker/data-plane.ts).
  const config = (deps.authz as { current?: () => { readonly snapshot: object } | null }).current?.()?.snapshot ?? null
  const routes = tableOf(cluster, config)
  const table = routes.routedPorts().length === 0
    ? l7TableFor(cluster, deps.node)
    : L7Table.build(cluster, { node: deps.node, routeOf: (s, p) => routes.engagement(`${s.namespace}/${s.name}`, p.port) })
  return l7View(table, deps.enroller.enrolledPods().map((e) => e.plan.pod), l7PolicyLookupOf(deps.authz))
}

export function l7ForAuthz (deps: Pick<L7AdminDeps, 'cluster' | 'authz'>, to: string): L7CheckLine[] {
  return l7ForDestination(to, deps.cluster(), l7PolicyLookupOf(deps.authz))
}
