import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { isPodComponent } from './cgroup-layout'

// The processes of a pod, found the way istio-cni and Kmesh find them: every
// /proc/<pid>/cgroup (of the host's procfs, mounted at /host/proc) whose cgroup path
// passes through the pod-level cgroup of the pod's UID. The paths are as the reader's
// cgroup namespace shows them (a containerised agent may see "/../../kubepods/…"), so
// only the components from the pod cgroup down are trusted.

export interface PodProcess {
  readonly pid: number
  /** Path components of its cgroup, the pod-level one first, then the container's. */
  readonly fromPod: readonly string[]
  /** The components before the pod cgroup, as this cgroup namespace shows them ("..", "kubepods", …). */
  readonly abovePod: readonly string[]
}

/** The pod's processes, in pid order. A process that exits during the scan is skipped. */
export function findPodProcesses (procRoot: string, uid: string): PodProcess[] {
  const out: PodProcess[] = []
  let entries: string[]
  try {
    entries = readdirSync(procRoot)
  } catch {
    return out
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue
    let text: string
    try {
      text = readFileSync(join(procRoot, name, 'cgroup'), 'utf8')
    } catch {
      continue
    }
    if (!text.includes(uid) && !text.includes(uid.replace(/-/g, '_'))) continue
    // Prefer the cgroup v2 line ("0::/path"); v1 lines ("N:controllers:/path") are a fallback on hybrid hosts.
    const lines = text.split('\n').filter((l) => l !== '')
    const ordered = [...lines.filter((l) => l.startsWith('0::')), ...lines.filter((l) => !l.startsWith('0::'))]
    for (const line of ordered) {
      const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1)
      const parts = path.split('/').filter((s) => s !== '')
      const at = parts.findIndex((p) => isPodComponent(p, uid))
      if (at < 0) continue
      out.push({ pid: Number(name), fromPod: parts.slice(at), abovePod: parts.slice(0, at) })
      break
    }
  }
  return out.sort((a, b) => a.pid - b.pid)
}

/** Identity of a namespace file (/proc/PID/ns/net): device and inode, or null if it cannot be read. */
export function namespaceId (path: string): string | null {
  try {
    const s = statSync(path)
    return `${s.dev}:${s.ino}`
  } catch {
    return null
  }
}
