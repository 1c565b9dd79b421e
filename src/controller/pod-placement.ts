import type { DiscoverySource } from '../discovery'
import type { FerryError } from '../errors'

// Where pods run, as node authorization needs it: which node each pod is scheduled on,
// its namespace, service account and phase. Two sources give it: a discovery source (the
// lab's cluster file, through the `file` source) and, on a cluster, a watch of the API
// server's pods (src/kubernetes/pod-placement.ts).

export interface PodPlacement {
  readonly node: string
  readonly namespace: string
  readonly serviceAccount: string
  /** Pending, Running, Succeeded, Failed, Unknown; null when not reported yet. */
  readonly phase: string | null
}

export interface PlacementWatcher {
  /** Every scheduled pod of the cluster, as of `generation` (strictly increasing). */
  onPlacements (placements: readonly PodPlacement[], generation: number): void
  /** The source failed for now; the last list stays in force. */
  onError (err: FerryError): void
}

export interface PodPlacementSource {
  /** For logs: "cluster file /x/cluster.json", "kubernetes https://…". */
  readonly origin: string
  start (watcher: PlacementWatcher): void
  close (): void
}

/** The placements of a discovery source's snapshots (the lab's cluster file). */
export function placementsFromDiscovery (source: DiscoverySource, origin: string): PodPlacementSource {
  return {
    origin,
    start (watcher) {
      source.start({
        onSnapshot: (s) => {
          const placements: PodPlacement[] = []
          for (const pod of s.pods) {
            if (pod.nodeName !== null) placements.push({ node: pod.nodeName, namespace: pod.namespace, serviceAccount: pod.serviceAccountName, phase: pod.phase })
          }
          watcher.onPlacements(placements, s.generation)
        },
        onError: (err) => { watcher.onError(err) }
      })
    },
    close () { source.close() }
  }
}
