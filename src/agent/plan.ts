import { meshDecision } from '../discovery/mesh-policy'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import type { PodLocation, PodLocator } from '../discovery/pod-locator'
import { type FerryError, isFerryError, ferryError } from '../errors'

// What this node should have enrolled, from one snapshot: every local, meshed, live pod,
// either as a complete plan or as the reason it cannot be enrolled. Pure but for the
// locator. A pod whose CNI ADD gave hints (src/agent/cni-enroll.ts) is located in the
// netns the ADD named and, while its object has no IP yet (the kubelet reports it only
// after the sandbox is up), takes the IPs the primary CNI plugin gave it.

export interface PodPlan {
  readonly pod: Pod
  readonly location: PodLocation
  readonly excludeOutboundPorts: readonly number[]
  readonly excludeInboundPorts: readonly number[]
  /** Changes whenever anything enrollment depends on changes (then the pod is re-enrolled). */
  readonly fingerprint: string
}

/** What a pod's CNI ADD said: its sandbox's netns file and the primary plugin's IPs (canonical). */
export interface PodHints {
  readonly netnsPath: string
  readonly podIPs: readonly string[]
}

export interface NodePlan {
  /** uid → plan, for local meshed pods that can be enrolled. */
  readonly plans: ReadonlyMap<string, PodPlan>
  /** uid → why a local meshed pod cannot be enrolled (bad annotation, cannot be located). */
  readonly blocked: ReadonlyMap<string, { readonly pod: Pod, readonly error: FerryError }>
}

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed'])

export function planNode (snapshot: ClusterSnapshot, node: string, locator: PodLocator, hints: ReadonlyMap<string, PodHints> = new Map()): NodePlan {
  const namespaces = new Map(snapshot.namespaces.map((n) => [n.name, n]))
  const plans = new Map<string, PodPlan>()
  const blocked = new Map<string, { pod: Pod, error: FerryError }>()
  for (const listed of snapshot.pods) {
    if (listed.nodeName !== node || listed.hostNetwork || (listed.phase !== null && TERMINAL_PHASES.has(listed.phase))) continue
    const hint = hints.get(listed.uid)
    const pod = hint !== undefined && listed.podIPs.length === 0 && hint.podIPs.length > 0 ? Object.freeze({ ...listed, podIPs: hint.podIPs }) : listed
    const decision = meshDecision(pod, namespaces.get(pod.namespace))
    if (!decision.meshed) continue
    if ('error' in decision) { blocked.set(pod.uid, { pod, error: decision.error }); continue }
    if (pod.podIPs.length === 0) {
      blocked.set(pod.uid, { pod, error: ferryError('FERRY_ERR_ENROLL', `pod ${pod.namespace}/${pod.name} has no IP yet`) })
      continue
    }
    let location: PodLocation
    try {
      location = hint === undefined ? locator.locate(pod) : locator.locate(pod, { netnsPath: hint.netnsPath })
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
