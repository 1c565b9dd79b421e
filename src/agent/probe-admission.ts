import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import type { PodProbeCounts } from '../telemetry/probe-metrics'
import { KUBELET_CGROUP_AUTO, type AgentOptions } from './options'
import type { CaptureHandle } from './platform'
import type { EnrolledPod } from './pod-enrollment'

// Probe admission, as the agent drives it: the kubelet's cgroup from --kubelet-cgroup
// (a directory, or `auto`: src/kubernetes/kubelet-cgroup.ts), handed to capture, which
// attaches bpf/kubelet.bpf.c there; and the per-pod counts the metrics read at scrape.

/** The kubelet's cgroup directory the options ask for, or null. Throws FERRY_ERR_KUBELET_CGROUP. */
export function kubeletCgroupOf (options: AgentOptions): string | null {
  const value = options.kubeletCgroup
  if (value !== KUBELET_CGROUP_AUTO) return value
  const k = options.kubernetes
  if (k === null) throw ferryError('FERRY_ERR_INVALID_ARG', `--kubelet-cgroup ${KUBELET_CGROUP_AUTO} needs --kubernetes`)
  // Loaded only here: the agent without --kubernetes never loads src/kubernetes.
  const { findKubeletCgroup } = require('../kubernetes/kubelet-cgroup') as typeof import('../kubernetes/kubelet-cgroup')
  return findKubeletCgroup({ procRoot: k.hostProc, cgroupMount: k.cgroupRoot })
}

/** Turns probe admission on (or off) in capture, saying so once. */
export function startProbeAdmission (capture: CaptureHandle, cgroupPath: string | null, log: Logger): void {
  capture.setKubeletCgroup(cgroupPath)
  if (cgroupPath === null) {
    log.warn('no --kubelet-cgroup: the kubelet\'s probes are plaintext from the node like any other connection, and STRICT pods refuse them')
  } else {
    log.info({ kubeletCgroup: cgroupPath }, 'probe admission: the kubelet\'s connections to the ports a pod\'s probes name reach the pod directly')
  }
}

/** The kubelet's connections to each pod enrolled here, named (read from the kernel at scrape time). */
export function probeCountsOf (capture: CaptureHandle, enrolled: readonly EnrolledPod[]): PodProbeCounts[] {
  let counts: ReadonlyMap<string, { admitted: number, notProbePort: number, expired: number }>
  try {
    counts = capture.probeCounts()
  } catch {
    return [] // capture closed (the agent is stopping): no series
  }
  const out: PodProbeCounts[] = []
  for (const e of enrolled) {
    const c = counts.get(e.plan.pod.uid)
    if (c !== undefined) out.push({ namespace: e.plan.pod.namespace, pod: e.plan.pod.name, ...c })
  }
  return out
}
