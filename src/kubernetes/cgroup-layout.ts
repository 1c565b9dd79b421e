import { existsSync } from 'node:fs'
import { join } from 'node:path'

// Where the kubelet puts a pod's cgroup, from the pod's UID alone.
//
//   driver    QoS                     pod cgroup (relative to the kubelet's cgroup root)
//   systemd   Burstable, BestEffort   kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice
//   systemd   Guaranteed              kubepods.slice/kubepods-pod<uid_>.slice
//   cgroupfs  Burstable, BestEffort   kubepods/<qos>/pod<uid>
//   cgroupfs  Guaranteed              kubepods/pod<uid>
//
// (<uid_> is the UID with "-" written "_": "-" separates the levels of a systemd slice
// name.) Below the pod cgroup are the containers: containerd's cri-containerd-<id>.scope
// (systemd) or <id> (cgroupfs); CRI-O's crio-<id>.scope / crio-<id>, and its monitor
// crio-conmon-<id>.scope / crio-conmon-<id>, which stays in the host's network namespace.
// A kubelet --cgroup-root other than "/" (kind uses /kubelet) prefixes every level:
// kubelet.slice/kubelet-kubepods.slice/… for systemd, kubelet/kubepods/… for cgroupfs.

export const QOS_LEVELS = Object.freeze(['burstable', 'besteffort', ''] as const)

/** The pod cgroup's candidate paths, relative to the cgroup2 mount, for every driver, QoS class and given kubelet root. */
export function podCgroupCandidates (uid: string, kubeletRoots: readonly string[] = ['/']): string[] {
  const out: string[] = []
  for (const root of kubeletRoots) {
    const prefix = root.split('/').filter((s) => s !== '')
    for (const qos of QOS_LEVELS) {
      const levels = [...prefix, 'kubepods', ...(qos === '' ? [] : [qos])]
      out.push(expandSlice(`${[...levels, `pod${uid.replace(/-/g, '_')}`].join('-')}.slice`))
      out.push(join(...levels, `pod${uid}`))
    }
  }
  return out
}

/** systemd's nesting of a slice name: a-b-c.slice lives at a.slice/a-b.slice/a-b-c.slice. */
export function expandSlice (name: string): string {
  const parts = name.replace(/\.slice$/, '').split('-')
  return parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`).join('/')
}

/** True when a path component is the pod-level cgroup of `uid`, in either driver's spelling. */
export function isPodComponent (component: string, uid: string): boolean {
  return component === `pod${uid}` || component.endsWith(`-pod${uid.replace(/-/g, '_')}.slice`)
}

/** CRI-O's container monitor: it runs in the pod's cgroup but not in the pod's network namespace. */
export function isConmon (component: string): boolean {
  return component.startsWith('crio-conmon-')
}

/** The cgroup v2 hierarchy under a host mount: hybrid hosts have it at <mount>/unified. */
export function cgroup2Under (mount: string): string {
  return existsSync(join(mount, 'unified', 'cgroup.procs')) ? join(mount, 'unified') : mount
}
