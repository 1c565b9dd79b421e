import { type ListWatchServer, keyOf, type Resource } from './api-server'

// The lab's objects (its cluster.json, a `v1 List`) into the list + watch server, as
// writes to an API server: an object that appeared is created, one that changed is
// replaced (a new resourceVersion, a MODIFIED event), one that is gone is deleted.
// Objects reach the server the way a cluster shows them to an agent — without the lab's
// own annotations (lab.ferry.dev/*), so an agent in --kubernetes-api mode has to locate
// pods the kubelet's way, as on a cluster. Nodes are not served: no agent reads them.

const RESOURCE_OF: Readonly<Record<string, Resource>> = { Pod: 'pods', Service: 'services', Namespace: 'namespaces' }
const LAB_ANNOTATION_PREFIX = 'lab.ferry.dev/'

type Obj = Record<string, any>

export interface SyncReport { created: number, replaced: number, deleted: number }

export function syncList (server: ListWatchServer, list: { items?: unknown[] }): SyncReport {
  const wanted: Record<Resource, Map<string, Obj>> = { pods: new Map(), services: new Map(), namespaces: new Map() }
  for (const item of list.items ?? []) {
    const o = item as Obj
    const resource = RESOURCE_OF[o?.kind as string]
    if (resource === undefined || typeof o.metadata?.name !== 'string') continue
    const served = asServed(o)
    wanted[resource].set(keyOf(served), served)
  }
  const report: SyncReport = { created: 0, replaced: 0, deleted: 0 }
  for (const resource of Object.keys(wanted) as Resource[]) {
    for (const [key, o] of wanted[resource]) {
      const have = server.get(resource, key)
      if (have !== undefined && comparable(have) === comparable(o)) continue
      server.apply(resource, o)
      if (have === undefined) report.created++
      else report.replaced++
    }
    for (const key of server.keys(resource)) {
      if (wanted[resource].has(key)) continue
      const [namespace, name] = key.split('/')
      server.delete(resource, namespace === '' ? undefined : namespace, name)
      report.deleted++
    }
  }
  return report
}

/** The object as the API server would hold it: no kind (lists carry it), no lab annotations. */
function asServed (o: Obj): Obj {
  const { kind: _kind, ...rest } = structuredClone(o)
  const annotations = Object.fromEntries(Object.entries((rest.metadata.annotations ?? {}) as Record<string, string>).filter(([k]) => !k.startsWith(LAB_ANNOTATION_PREFIX)))
  rest.metadata = { ...rest.metadata, annotations }
  delete rest.metadata.resourceVersion
  return rest
}

function comparable (o: Obj): string {
  const { resourceVersion: _rv, ...metadata } = o.metadata ?? {}
  return JSON.stringify({ ...o, metadata })
}
