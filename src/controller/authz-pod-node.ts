import type { FerryError } from '../errors'
import type { SpiffeId } from '../identity/spiffe-id'
import type { Logger } from '../telemetry/logger'
import type { Caller } from './authn'
import type { Authorizer, AuthzDecision } from './authz'
import type { PodPlacement, PodPlacementSource } from './pod-placement'

// Node authorization: a node may obtain the identity (namespace, service account) of a pod
// scheduled on it, and nothing else. The pod list comes from a placement source (the
// lab's cluster.json through the `file` discovery source; on a cluster, a watch of the
// API server's pods: src/kubernetes/pod-placement.ts), indexed as
// node → {"ns/sa"} on every snapshot. Pods that have finished (phase Succeeded or Failed)
// no longer count. Until the first snapshot arrives every request is refused, and agents
// retry.

const FINISHED = new Set(['Succeeded', 'Failed'])

export class PodNodeAuthorizer implements Authorizer {
  private byNode = new Map<string, Set<string>>()
  private generation = 0
  private readonly loaded: Promise<void>
  private markLoaded: () => void = () => {}

  constructor (private readonly opts: { trustDomain: string, source: PodPlacementSource, log: Logger }) {
    this.loaded = new Promise((resolve) => { this.markLoaded = resolve })
    opts.source.start({
      onPlacements: (placements, generation) => { this.index(placements, generation) },
      onError: (err: FerryError) => { opts.log.error({ err }, 'pod list unusable; node authorization keeps the last good one') }
    })
  }

  /** Resolves once the first pod list is in. */
  async whenLoaded (): Promise<void> { await this.loaded }

  authorize (caller: Caller, id: SpiffeId): AuthzDecision {
    if (id.trustDomain !== this.opts.trustDomain) {
      return { allowed: false, reason: `trust domain "${id.trustDomain}" is not this CA's ("${this.opts.trustDomain}")` }
    }
    if (this.generation === 0) return { allowed: false, reason: 'the pod list is not loaded yet' }
    const key = `${id.namespace}/${id.serviceAccount}`
    if (this.byNode.get(caller.node)?.has(key) === true) return { allowed: true }
    const elsewhere = [...this.byNode].filter(([, keys]) => keys.has(key)).map(([node]) => node)
    const where = elsewhere.length === 0 ? 'no such pod in the cluster' : `such pods run on ${elsewhere.slice(0, 3).join(', ')}`
    return { allowed: false, reason: `no pod of service account ${id.serviceAccount} in namespace ${id.namespace} is scheduled on node ${caller.node} (${where})` }
  }

  close (): void {
    this.opts.source.close()
  }

  private index (placements: readonly PodPlacement[], generation: number): void {
    const byNode = new Map<string, Set<string>>()
    for (const pod of placements) {
      if (FINISHED.has(pod.phase ?? '')) continue
      let keys = byNode.get(pod.node)
      if (keys === undefined) byNode.set(pod.node, keys = new Set())
      keys.add(`${pod.namespace}/${pod.serviceAccount}`)
    }
    this.byNode = byNode
    this.generation = generation
    this.opts.log.info({ origin: this.opts.source.origin, generation, nodes: byNode.size, pods: placements.length }, 'pod list updated')
    this.markLoaded()
  }
}
