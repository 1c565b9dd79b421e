import type { ClusterSnapshot, Service } from '../discovery/model'

// What the route compilers need of the cluster: Services by namespace and name, and the
// name a Service is known by in DNS (hosts of a VirtualService or DestinationRule).

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local'

/** A route object as the compilers read it (src/resources/ hands typed resources of this shape). */
export interface RouteObject<S> {
  readonly metadata: { readonly name: string, readonly namespace: string, readonly creationTimestamp?: string }
  readonly spec: S
}

export class ServicesView {
  private readonly byRef: ReadonlyMap<string, Service>

  constructor (services: readonly Service[], readonly clusterDomain: string = DEFAULT_CLUSTER_DOMAIN) {
    this.byRef = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]))
  }

  static of (snapshot: ClusterSnapshot | null, clusterDomain?: string): ServicesView {
    return new ServicesView(snapshot?.services ?? [], clusterDomain)
  }

  get (namespace: string, name: string): Service | undefined { return this.byRef.get(`${namespace}/${name}`) }

  /**
   * The Service an Istio host names, relative to `namespace` (the object's): `name`,
   * `name.ns`, `name.ns.svc`, `name.ns.svc.<cluster domain>`. Wildcards and external
   * hosts name none.
   */
  byHost (host: string, namespace: string): Service | undefined {
    if (host.includes('*')) return undefined
    const parts = host.split('.')
    if (parts.length === 1) return this.get(namespace, parts[0])
    if (parts.length === 2) return this.get(parts[1], parts[0])
    if (parts[2] !== 'svc') return undefined
    if (parts.length === 3 || parts.slice(3).join('.') === this.clusterDomain) return this.get(parts[1], parts[0])
    return undefined
  }
}

export function serviceRef (s: Service): string { return `${s.namespace}/${s.name}` }

/** Objects in a stable order: oldest creationTimestamp first (absent: oldest), then namespace/name. */
export function byAge<T extends RouteObject<unknown>> (a: T, b: T): number {
  const ta = a.metadata.creationTimestamp ?? ''
  const tb = b.metadata.creationTimestamp ?? ''
  if (ta !== tb) return Date.parse(ta === '' ? '1970-01-01T00:00:00Z' : ta) - Date.parse(tb === '' ? '1970-01-01T00:00:00Z' : tb) || (ta < tb ? -1 : 1)
  const ra = `${a.metadata.namespace}/${a.metadata.name}`
  const rb = `${b.metadata.namespace}/${b.metadata.name}`
  return ra < rb ? -1 : ra > rb ? 1 : 0
}
