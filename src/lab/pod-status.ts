// A Pod's `status` as the kubelet publishes it, from what the lab observed of the pod:
// its sandbox's network (CNI ADD done), and per container whether it runs, has started
// (startup probe), is ready (readiness probe) and how often it was restarted. Pure: the
// time is given, and a condition keeps its lastTransitionTime until its status changes,
// so an unchanged pod gives an identical status and nobody rewrites the cluster file.
//
//   phase       Pending until every container has been started once, then Running (the
//               lab's kubelet does not restart containers that exit on their own: they
//               stay terminated and the pod not Ready)
//   conditions  PodReadyToStartContainers, Initialized, Ready, ContainersReady,
//               PodScheduled — the kubelet's order; Ready = ContainersReady (the lab
//               takes no readiness gates)

export type ContainerState =
  | { readonly running: { readonly startedAt: string } }
  | { readonly waiting: { readonly reason: string, readonly message?: string } }
  | { readonly terminated: { readonly exitCode: number, readonly signal?: number, readonly reason: string, readonly message?: string, readonly startedAt?: string, readonly finishedAt: string } }

export interface ObservedContainer {
  readonly name: string
  readonly state: ContainerState
  /** The previous run's end, after a restart. */
  readonly lastState?: ContainerState | null
  readonly started: boolean
  readonly ready: boolean
  readonly restartCount: number
  /** `containerd://<id>` once created. */
  readonly containerID?: string | null
}

export interface ObservedPod {
  /** The pod's network is set up (every CNI plugin's ADD succeeded). */
  readonly sandboxReady: boolean
  readonly containers: readonly ObservedContainer[]
  /** When the lab accepted the pod (RFC 3339). */
  readonly startTime: string
  readonly podIPs: readonly string[]
  readonly hostIPs: readonly string[]
}

export interface PodCondition {
  readonly type: string
  readonly status: 'True' | 'False'
  readonly lastProbeTime: null
  readonly lastTransitionTime: string
  readonly reason?: string
  readonly message?: string
}

export interface PublishedPodStatus {
  readonly phase: 'Pending' | 'Running'
  readonly conditions: readonly PodCondition[]
  readonly hostIP?: string
  readonly hostIPs: ReadonlyArray<{ readonly ip: string }>
  readonly podIP?: string
  readonly podIPs: ReadonlyArray<{ readonly ip: string }>
  readonly startTime: string
  readonly containerStatuses: readonly PublishedContainerStatus[]
  readonly qosClass: 'BestEffort'
}

export interface PublishedContainerStatus {
  readonly name: string
  readonly state: ContainerState
  readonly lastState: ContainerState | Record<string, never>
  readonly ready: boolean
  readonly started: boolean
  readonly restartCount: number
  readonly containerID?: string
}

export const CONTAINER_CREATING: ContainerState = Object.freeze({ waiting: Object.freeze({ reason: 'ContainerCreating' }) })

/** A pod the lab has just accepted: nothing runs yet. */
export function pendingPod (containers: readonly string[], startTime: string, podIPs: readonly string[], hostIPs: readonly string[]): ObservedPod {
  return {
    sandboxReady: false,
    containers: containers.map((name) => ({ name, state: CONTAINER_CREATING, started: false, ready: false, restartCount: 0 })),
    startTime,
    podIPs,
    hostIPs
  }
}

export function podStatus (observed: ObservedPod, prev: { conditions?: readonly PodCondition[] } | null | undefined, now: string): PublishedPodStatus {
  const cs = observed.containers
  const unready = cs.filter((c) => !c.ready).map((c) => c.name)
  const everStarted = cs.every((c) => !('waiting' in c.state) || c.restartCount > 0 || c.lastState != null)
  const containersReady = cs.length > 0 && unready.length === 0
  const notReady = containersReady ? {} : { reason: 'ContainersNotReady', message: `containers with unready status: [${unready.join(' ')}]` }
  const condition = (type: string, ok: boolean, extra: { reason?: string, message?: string } = {}): PodCondition => {
    const before = prev?.conditions?.find((c) => c.type === type)
    const status = ok ? 'True' : 'False'
    return { type, status, lastProbeTime: null, lastTransitionTime: before?.status === status ? before.lastTransitionTime : now, ...extra }
  }
  return {
    phase: everStarted ? 'Running' : 'Pending',
    conditions: [
      condition('PodReadyToStartContainers', observed.sandboxReady),
      condition('Initialized', true),
      condition('Ready', containersReady, notReady),
      condition('ContainersReady', containersReady, notReady),
      condition('PodScheduled', true)
    ],
    ...(observed.hostIPs.length > 0 ? { hostIP: observed.hostIPs[0] } : {}),
    hostIPs: observed.hostIPs.map((ip) => ({ ip })),
    ...(observed.podIPs.length > 0 ? { podIP: observed.podIPs[0] } : {}),
    podIPs: observed.podIPs.map((ip) => ({ ip })),
    startTime: observed.startTime,
    containerStatuses: cs.map((c) => ({
      name: c.name,
      state: c.state,
      lastState: c.lastState ?? {},
      ready: c.ready,
      started: c.started,
      restartCount: c.restartCount,
      ...(c.containerID == null ? {} : { containerID: c.containerID })
    })),
    qosClass: 'BestEffort'
  }
}

/** True when the pod's Ready condition is True. */
export function isPodReady (status: { conditions?: ReadonlyArray<{ type: string, status: string }> } | undefined): boolean {
  return status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True'
}
