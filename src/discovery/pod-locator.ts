import { isAbsolute, join } from 'node:path'
import { PATHS } from '../config/env'
import { ferryError } from '../errors'
import type { Pod } from './model'

// Where a pod lives on this node: its network namespace and its cgroup v2 directory.
// The lab can publish both as annotations (`lab-annotations`); on a cluster, and in a
// lab run with --kubernetes-api, the `kubelet` locator (src/kubernetes) finds them from
// the kubelet's cgroup layout and the pod's processes.

export interface PodLocation {
  /** Path of a file that opens the pod's network namespace (/var/run/netns/X, /proc/PID/ns/net). */
  readonly netnsPath: string
  /** Absolute path of the pod's cgroup v2 directory. */
  readonly cgroupPath: string
}

/** What the pod's CNI ADD said about where it lives (src/agent/cni-enroll.ts): its sandbox's netns file. */
export interface LocateHint {
  readonly netnsPath: string
}

export interface PodLocator {
  /**
   * Throws FERRY_ERR_ENROLL when the pod cannot be located (yet). With a hint, the
   * netns is the hint's (at CNI ADD no process of the pod exists to find it from) and
   * only the cgroup is looked for.
   */
  locate (pod: Pod, hint?: LocateHint): PodLocation
}

export const NETNS_ANNOTATION = 'lab.ferry.dev/netns'
export const CGROUP_ANNOTATION = 'lab.ferry.dev/cgroup'

/** Reads lab.ferry.dev/netns (a path, or a name under /var/run/netns; a hint's netns wins) and lab.ferry.dev/cgroup (absolute, or relative to the cgroup2 root). */
export class LabAnnotationLocator implements PodLocator {
  constructor (private readonly roots: { netnsDir: string, cgroup2: string } = { netnsDir: PATHS.netnsDir, cgroup2: PATHS.cgroup2 }) {}

  locate (pod: Pod, hint?: LocateHint): PodLocation {
    const netns = hint?.netnsPath ?? pod.annotations[NETNS_ANNOTATION]
    const cgroup = pod.annotations[CGROUP_ANNOTATION]
    if (netns === undefined || netns === '') throw missing(pod, NETNS_ANNOTATION)
    if (cgroup === undefined || cgroup === '') throw missing(pod, CGROUP_ANNOTATION)
    return Object.freeze({
      netnsPath: isAbsolute(netns) ? netns : join(this.roots.netnsDir, netns),
      cgroupPath: isAbsolute(cgroup) ? cgroup : join(this.roots.cgroup2, cgroup)
    })
  }
}

function missing (pod: Pod, annotation: string): Error {
  return ferryError('FERRY_ERR_ENROLL', `pod ${pod.namespace}/${pod.name}: no ${annotation} annotation, cannot locate the pod on this node`)
}

/** Where a locator looks on the host; each locator reads what it needs (lab-annotations: nothing). */
export interface PodLocatorOptions {
  /** The host's procfs (/host/proc in the DaemonSet). */
  readonly procRoot?: string
  /** The host's cgroup mount (/host/sys/fs/cgroup in the DaemonSet). */
  readonly cgroupRoot?: string
}

export type PodLocatorFactory = (opts: PodLocatorOptions) => PodLocator

const locators = new Map<string, PodLocatorFactory>([['lab-annotations', () => new LabAnnotationLocator()]])

export function registerPodLocator (name: string, factory: PodLocatorFactory): void { locators.set(name, factory) }

export function createPodLocator (name: string, opts: PodLocatorOptions = {}): PodLocator {
  const factory = locators.get(name)
  if (factory === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `unknown pod locator "${name}" (known: ${[...locators.keys()].join(', ')})`)
  return factory(opts)
}
