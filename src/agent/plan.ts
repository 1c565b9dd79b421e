import { meshDecision } from '../discovery/mesh-policy'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import type { PodLocation, PodLocator } from '../discovery/pod-locator'
import { type FerryError, isFerryError, ferryError } from '../errors'

// What this node should have enrolled, from one snapshot: every local, meshed, live pod,
// either as a complete plan or as the reason it cannot be enrolled. Pure: no I/O.

export interface PodPlan {
  readonly pod: Pod
  readonly location: PodLocation
  readonly excludeOutboundPorts: readonly number[]
  readonly excludeInboundPorts: readonly number[]
  /** Changes whenever anything enrollment depends on changes (then the pod is re-enrolled). */
  readonly fingerprint: string
}

export interface NodePlan {
  /** uid → plan, for local meshed pods that can be enrolled. */
  readonly plans: ReadonlyMap<string, PodPlan>
  /** uid → why a local meshed pod cannot be enrolled (bad annotation, cannot be located). */
  readonly blocked: ReadonlyMap<string, { readonly pod: Pod, readonly error: FerryError }>
}

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed'])

export function planNode (snapshot: ClusterSnapshot, node: string, locator: PodLocator): NodePlan {
  const namespaces = new Map(snapshot.namespaces.map((n) => [n.name, n]))
  const plans = new Map<string, PodPlan>()
  const blocked = new Map<string, { pod: Pod, error: FerryError }>()
  for (const pod of snapshot.pods) {
    if (pod.nodeName !== node || pod.hostNetwork || (pod.phase !== null && TERMINAL_PHASES.has(pod.phase))) continue
    const decision = meshDecision(pod, namespaces.get(pod.namespace))
    if (!decision.meshed) continue
    if ('error' in decision) { blocked.set(pod.uid, { pod, error: decision.error }); continue }
    if (pod.podIPs.length === 0) {
      blocked.set(pod.uid, { pod, error: ferryError('FERRY_ERR_ENROLL', `pod ${pod.namespace}/${pod.name} has no IP yet`) })
      continue
    }
    let location: PodLocation
    try {
      location = locator.locate(pod)
    } catch (err) {
      if (!isFerryError(err)) throw err
      blocked.set(pod.uid, { pod, error: err })
      continue
    }
    const fingerprint = JSON.stringify([location.netnsPath, location.cgroupPath, pod.podIPs, decision.excludeOutboundPorts, decision.excludeInboundPorts, pod.probePorts])
    plans.set(pod.uid, Object.freeze({ pod, location, excludeOutboundPorts: decision.excludeOutboundPorts, excludeInboundPorts: decision.excludeInboundPorts, fingerprint }))
  }
  return { plans, blocked }
}
