import type { Pod } from '../discovery/model'
import type { Logger } from '../telemetry/logger'
import { type K8s, type KubeConfigSource, httpStatusOf, loadKubeConfig, loadKubernetesClient } from './client'

// Kubernetes Events about a pod, as `kubectl describe pod` shows them: the agent says
// why it cannot enroll a pod where the pod's owner looks first. Events are best effort:
// a failure to post one is logged at debug and changes nothing else. They are bounded:
// the caller posts once per pod and distinct reason, and at most `ratePerSecond` go out
// (a node with many broken pods, or an API server that is slow, never queues them).

export type PodEventType = 'Normal' | 'Warning'

export interface PodEventRecorder {
  record (pod: Pod, type: PodEventType, reason: string, message: string): void
}

export const EVENT_DEFAULTS = Object.freeze({
  component: 'ferry-agent',
  /** Events posted per second at most (the rest are dropped and counted in the log). */
  ratePerSecond: 5,
  /** Kubernetes limits an Event's message to 1 KiB when it is shown. */
  maxMessage: 1024
})

export interface EventRecorderOptions {
  readonly node: string
  readonly log: Logger
  readonly kubeconfig?: KubeConfigSource
  readonly now?: () => number
}

export function kubernetesEventRecorder (opts: EventRecorderOptions): PodEventRecorder {
  const now = opts.now ?? Date.now
  let api: Promise<K8s.CoreV1Api> | null = null
  let windowStart = 0
  let inWindow = 0
  let dropped = 0
  const coreApi = async (): Promise<K8s.CoreV1Api> => {
    api ??= (async () => {
      const client = await loadKubernetesClient()
      const kc = await loadKubeConfig(opts.kubeconfig)
      return kc.makeApiClient(client.CoreV1Api)
    })()
    return await api
  }
  return {
    record (pod, type, reason, message) {
      const t = now()
      if (t - windowStart >= 1000) {
        if (dropped > 0) opts.log.warn({ dropped }, 'Kubernetes events dropped (over the rate limit)')
        windowStart = t
        inWindow = 0
        dropped = 0
      }
      if (inWindow >= EVENT_DEFAULTS.ratePerSecond) { dropped++; return }
      inWindow++
      const at = new Date(t)
      const body: K8s.CoreV1Event = {
        metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid },
        type,
        reason,
        message: message.length > EVENT_DEFAULTS.maxMessage ? `${message.slice(0, EVENT_DEFAULTS.maxMessage - 1)}…` : message,
        source: { component: EVENT_DEFAULTS.component, host: opts.node },
        reportingComponent: `ferry.dev/${EVENT_DEFAULTS.component}`,
        reportingInstance: opts.node,
        firstTimestamp: at,
        lastTimestamp: at,
        count: 1
      }
      coreApi()
        .then(async (core) => await core.createNamespacedEvent({ namespace: pod.namespace, body }))
        .catch((err: unknown) => { opts.log.debug({ status: httpStatusOf(err), err: (err as Error).message, reason, pod: `${pod.namespace}/${pod.name}` }, 'cannot post a Kubernetes event') })
    }
  }
}
