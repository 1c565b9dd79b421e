import type { ClusterSnapshot } from '../discovery/model'
import { checkRoute, matchText, type RouteCheck } from './check'
import { type RouteConfig, RoutingTable } from './routing-table'

// The agent's view of routing for its admin server: /debug/config's `routes` section (every
// Service port with routes, its entries in order, what did not resolve, the
// VirtualServices a Gateway API route overrides) and /debug/routes (`ferry route check`).
// Compiled on demand from the main thread's copies of the cluster and configuration
// snapshots: the same inputs, and so the same routes, as every worker's.

const TABLES = new WeakMap<object, { readonly cluster: ClusterSnapshot | null, readonly table: RoutingTable }>()

/** The routes of a cluster and configuration snapshot pair, compiled once per pair. */
export function tableOf (cluster: ClusterSnapshot | null, config: object | null): RoutingTable {
  if (config === null) return RoutingTable.build(cluster, null)
  const kept = TABLES.get(config)
  if (kept !== undefined && kept.cluster === cluster) return kept.table
  const table = RoutingTable.build(cluster, config as Partial<RouteConfig>)
  TABLES.set(config, { cluster, table })
  return table
}

export function routesSection (cluster: ClusterSnapshot | null, config: object | null): unknown {
  const table = tableOf(cluster, config)
  const ports = table.routedPorts().map((key) => {
    const colon = key.lastIndexOf(':')
    const service = key.slice(0, colon)
    const port = Number(key.slice(colon + 1))
    const namespace = service.slice(0, service.indexOf('/'))
    const routes = table.routesFor(service, port, namespace)
    return {
      service,
      port,
      kind: routes?.kind ?? null,
      objects: routes?.objects ?? [],
      entries: (routes?.entries ?? []).map((e) => ({ rule: e.rule.name, match: matchText(e.match), backends: e.rule.backends.map((b) => `${b.backend.service}:${b.backend.port}${b.backend.subset === null ? '' : `#${b.backend.subset.name}`} weight ${b.weight}`) }))
    }
  })
  return { ports, problems: Object.fromEntries(table.problems()), overriddenVirtualServices: table.overriddenVirtualServices() }
}

export function routeCheckLive (cluster: ClusterSnapshot | null, config: object | null, query: URLSearchParams): { status: number, body: RouteCheck | { code: string, error: string } } {
  const from = query.get('from')
  const to = query.get('to')
  if (from === null || to === null) return { status: 400, body: { code: 'FERRY_ERR_INVALID_ARG', error: 'give from=NS/POD and to=NS/SERVICE[:PORT]' } }
  const headers: Record<string, string> = {}
  for (const h of query.getAll('header')) {
    const eq = h.indexOf('=')
    if (eq > 0) headers[h.slice(0, eq).toLowerCase()] = h.slice(eq + 1)
  }
  const opt = (k: string): Record<string, string> => { const v = query.get(k); return v === null ? {} : { [k]: v } }
  try {
    return { status: 200, body: checkRoute(tableOf(cluster, config), cluster, { from, to, headers, ...opt('path'), ...opt('method'), ...opt('host') }) }
  } catch (err) {
    return { status: 404, body: { code: 'FERRY_ERR_INVALID_ARG', error: (err as Error).message } }
  }
}
