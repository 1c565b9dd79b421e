import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createDiscoverySource, type DiscoverySource } from '../discovery'
import { createPodLocator, type PodLocator } from '../discovery/pod-locator'
import { ferryError } from '../errors'
import type { PodEventRecorder } from '../kubernetes/events'
import type { Logger } from '../telemetry/logger'
import type { AgentOptions } from './options'

// Which discovery source and pod locator the agent's options select:
//   --cluster-file FILE   the `file` source on FILE, pods located by the lab's annotations;
//   --kubernetes          the `kubernetes` source (list + watch of the API server named by
//                         --kubeconfig, else in-cluster), pods located the kubelet's way
//                         under --host-proc and --cgroup-root.
// The host paths are checked here, at start-up, so a DaemonSet missing a mount fails at
// once with the option to fix rather than leaving every pod pending. The kubernetes
// source and locator (src/kubernetes) are loaded only with --kubernetes.

export interface AgentDiscovery {
  readonly source: DiscoverySource
  readonly locator: PodLocator
  /** Where the agent reports what it cannot do for a pod: Kubernetes Events with --kubernetes; null otherwise (the log says it). */
  readonly events: PodEventRecorder | null
}

export function agentDiscovery (options: AgentOptions, log: Logger): AgentDiscovery {
  const k = options.kubernetes
  if (k === null) {
    return {
      source: createDiscoverySource('file', { target: options.clusterFile as string, log }),
      locator: createPodLocator('lab-annotations'),
      events: null
    }
  }
  if (!existsSync(join(k.hostProc, 'self', 'ns', 'net'))) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --host-proc ${k.hostProc} is not a procfs (mount the host's /proc there read-only, or pass --host-proc)`)
  }
  if (!existsSync(join(k.cgroupRoot, 'cgroup.procs')) && !existsSync(join(k.cgroupRoot, 'unified', 'cgroup.procs'))) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --cgroup-root ${k.cgroupRoot} holds no cgroup v2 hierarchy (mount the host's /sys/fs/cgroup there, or pass --cgroup-root)`)
  }
  require('../kubernetes') // registers the "kubernetes" source and the "kubelet" locator
  const { kubernetesEventRecorder } = require('../kubernetes/events') as typeof import('../kubernetes/events')
  return {
    source: createDiscoverySource('kubernetes', { target: options.node, log, ...(k.kubeconfig === null ? {} : { kubeconfig: k.kubeconfig }) }),
    locator: createPodLocator('kubelet', { procRoot: k.hostProc, cgroupRoot: k.cgroupRoot }),
    events: kubernetesEventRecorder({ node: options.node, log, ...(k.kubeconfig === null ? {} : { kubeconfig: { file: k.kubeconfig } }) })
  }
}
