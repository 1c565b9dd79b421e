import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../config/env'
import type { Pod } from '../discovery/model'
import type { LocateHint, PodLocation, PodLocator } from '../discovery/pod-locator'
import { ferryError } from '../errors'
import { cgroup2Under, expandSlice, isConmon, podCgroupCandidates } from './cgroup-layout'
import { findPodProcesses, namespaceId, type PodProcess } from './proc-scan'

// Where a pod lives on a real node, from its UID: the pod-level cgroup the kubelet made
// (both cgroup drivers, every QoS class, containerd and CRI-O) and the network namespace
// of one of its container processes (/host/proc/<pid>/ns/net).
//
//   cgroup  1. the kubelet's known paths under the host's cgroup2 mount;
//           2. else the path of a pod process's cgroup, from the pod component down,
//              re-rooted under the mount (custom kubelet roots, cgroup namespaces);
//   netns   the lowest-pid process of the pod that is not CRI-O's conmon and whose
//           network namespace is not the agent's own (the agent runs in the host's,
//           so a pod process found there is conmon-like or host-network, never the pod);
//           once chosen, the same process for as long as it stays in the pod, so that
//           locating the pod again (every snapshot) gives the same path and does not
//           re-enroll it. When the pod's CNI ADD gave its sandbox's netns (a hint,
//           src/agent/cni-enroll.ts), that path, and no process is needed.
// Nothing found yet (the sandbox is still starting) is FERRY_ERR_ENROLL, which the
// enroller retries.

export interface KubeletLocatorOptions {
  /** The host's cgroup mount (/host/sys/fs/cgroup in the DaemonSet); its cgroup2 part is used. */
  readonly cgroupMount: string
  /** The host's procfs (/host/proc in the DaemonSet). */
  readonly procRoot: string
  /** kubelet --cgroup-root values to try directly ("/" by default; kind uses "/kubelet"). */
  readonly kubeletRoots?: readonly string[]
  /** A namespace file of the agent's own network namespace (the host's). */
  readonly ownNetns?: string
}

/** More pods than a node runs (the kubelet's default maximum is 110). */
const MAX_REMEMBERED = 1024

export const HOST_MOUNTS = Object.freeze({ cgroup: '/host/sys/fs/cgroup', proc: '/host/proc' })

/** The DaemonSet's host mounts when present, else this host's own cgroup2 and /proc (the lab, a bare host). */
export function defaultKubeletLocatorOptions (): KubeletLocatorOptions {
  return {
    cgroupMount: existsSync(HOST_MOUNTS.cgroup) ? HOST_MOUNTS.cgroup : PATHS.cgroup2,
    procRoot: existsSync(join(HOST_MOUNTS.proc, 'self')) ? HOST_MOUNTS.proc : '/proc'
  }
}

export class KubeletPodLocator implements PodLocator {
  private readonly cgroupRoot: string
  private readonly procRoot: string
  private readonly kubeletRoots: readonly string[]
  private readonly ownNetns: string
  /** The process whose netns each pod was located by (pod uid → pid). */
  private readonly chosen = new Map<string, number>()

  constructor (opts: KubeletLocatorOptions = defaultKubeletLocatorOptions()) {
    this.cgroupRoot = cgroup2Under(opts.cgroupMount)
    this.procRoot = opts.procRoot
    this.kubeletRoots = opts.kubeletRoots ?? ['/']
    this.ownNetns = opts.ownNetns ?? '/proc/self/ns/net'
  }

  locate (pod: Pod, hint?: LocateHint): PodLocation {
    // At CNI ADD the kubelet has made the pod cgroup but no process runs in it yet: the
    // layout finds it (a pod process, if there is one, for a kubelet root not tried).
    if (hint !== undefined) {
      let cgroupPath: string
      try {
        cgroupPath = this.podCgroup(pod, [])
      } catch {
        cgroupPath = this.podCgroup(pod, findPodProcesses(this.procRoot, pod.uid))
      }
      return Object.freeze({ netnsPath: hint.netnsPath, cgroupPath })
    }
    const processes = findPodProcesses(this.procRoot, pod.uid)
    const cgroupPath = this.podCgroup(pod, processes)
    const own = namespaceId(this.ownNetns)
    const previous = this.chosen.get(pod.uid)
    const ordered = [...processes.filter((p) => p.pid === previous), ...processes.filter((p) => p.pid !== previous)]
    for (const p of ordered) {
      if (p.fromPod.some(isConmon)) continue
      const netnsPath = join(this.procRoot, String(p.pid), 'ns', 'net')
      const id = namespaceId(netnsPath)
      if (id === null || id === own) continue
      this.chosen.delete(pod.uid)
      this.chosen.set(pod.uid, p.pid)
      // Pods come and go: forget the least recently located beyond a bound.
      if (this.chosen.size > MAX_REMEMBERED) this.chosen.delete(this.chosen.keys().next().value as string)
      return Object.freeze({ netnsPath, cgroupPath })
    }
    throw ferryError('FERRY_ERR_ENROLL', `pod ${pod.namespace}/${pod.name} (uid ${pod.uid}): no process of the pod in a network namespace of its own under ${this.procRoot} yet (${processes.length} process(es) in its cgroup)`)
  }

  private podCgroup (pod: Pod, processes: readonly PodProcess[]): string {
    const tried: string[] = []
    const candidates = podCgroupCandidates(pod.uid, this.kubeletRoots)
    for (const p of processes) {
      const pathToPod = [...p.abovePod.filter((c) => c !== '..'), p.fromPod[0]]
      for (let i = 0; i < pathToPod.length; i++) candidates.push(join(...pathToPod.slice(i)))
      if (p.fromPod[0].endsWith('.slice')) candidates.push(expandSlice(p.fromPod[0]))
    }
    for (const rel of new Set(candidates)) {
      const abs = join(this.cgroupRoot, rel)
      tried.push(abs)
      if (isDirectory(abs)) return abs
    }
    throw ferryError('FERRY_ERR_ENROLL', `pod ${pod.namespace}/${pod.name} (uid ${pod.uid}): no pod cgroup under ${this.cgroupRoot} (tried ${tried.slice(0, 4).join(', ')}${tried.length > 4 ? `, … ${tried.length} in all` : ''})`)
  }
}

function isDirectory (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}
