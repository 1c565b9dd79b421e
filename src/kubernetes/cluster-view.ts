import { parseClusterList } from '../discovery/cluster-list'
import type { ClusterSnapshot } from '../discovery/model'
import { type FerryError, isFerryError } from '../errors'

// What the reflectors hold, turned into the discovery snapshot every source produces,
// through the file source's own parser: the API objects are written out as the
// `v1 List` the lab writes, so validation, canonical IPs and workload names are the
// same code. Objects come in a stable order (pods on this node win over the same pod
// seen elsewhere, during a move between the two watches), so an unchanged cluster gives
// the same text and no new generation. One malformed object is dropped and reported; it
// does not hold the rest of the cluster back.

export interface ClusterObjects {
  readonly namespaces: readonly object[]
  /** This node's pods first: they win when a pod is briefly in both lists. */
  readonly localPods: readonly object[]
  readonly otherPods: readonly object[]
  readonly services: readonly object[]
}

export interface ClusterView {
  /** The List text the snapshot is parsed from (compared to skip unchanged rebuilds). */
  readonly text: string
  readonly build: (generation: number) => { snapshot: ClusterSnapshot, dropped: FerryError[] }
}

type Meta = { metadata?: { name?: string, namespace?: string, uid?: string } }

export function clusterView (objects: ClusterObjects, origin: string): ClusterView {
  const seen = new Set<string>()
  const pods: object[] = []
  for (const p of [...objects.localPods, ...objects.otherPods]) {
    const uid = (p as Meta).metadata?.uid
    if (uid !== undefined && seen.has(uid)) continue
    if (uid !== undefined) seen.add(uid)
    pods.push(p)
  }
  const items = [
    ...sorted(objects.namespaces).map((o) => withKind(o, 'Namespace')),
    ...sorted(pods).map((o) => withKind(o, 'Pod')),
    ...sorted(objects.services).map((o) => withKind(o, 'Service'))
  ]
  const text = JSON.stringify({ apiVersion: 'v1', kind: 'List', items })
  return {
    text,
    build: (generation) => {
      try {
        return { snapshot: parseClusterList(text, origin, generation), dropped: [] }
      } catch (err) {
        if (!isFerryError(err)) throw err
      }
      // Find the bad objects one by one and parse the rest.
      const dropped: FerryError[] = []
      const good = items.filter((item) => {
        try {
          parseClusterList(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [item] }), origin, generation)
          return true
        } catch (err) {
          if (!isFerryError(err)) throw err
          dropped.push(err)
          return false
        }
      })
      return { snapshot: parseClusterList(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: good }), origin, generation), dropped }
    }
  }
}

/** Objects from a list lack kind (the list has it); watch events carry it. */
function withKind (o: object, kind: string): object {
  return { ...o, kind }
}

function sorted (objects: readonly object[]): object[] {
  const key = (o: object): string => `${(o as Meta).metadata?.namespace ?? ''}/${(o as Meta).metadata?.name ?? ''}/${(o as Meta).metadata?.uid ?? ''}`
  return [...objects].sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)
}
