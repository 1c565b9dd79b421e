import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError } from '../errors'
import { cgroup2Under } from './cgroup-layout'

// `--kubelet-cgroup auto`: the cgroup of the node's kubelet, from the host's procfs.
// Every process whose command name is `kubelet` is read (/proc/<pid>/comm); its cgroup v2
// path (the "0::" line of /proc/<pid>/cgroup) is as the reader's cgroup namespace shows
// it — a containerised agent sees "/../../../../system.slice/kubelet.service" — so the
// ".." components are dropped and the rest is taken under the host's cgroup2 mount. The
// ".." climb from the agent's container cgroup (under kubepods) to the nearest ancestor
// it shares with the kubelet's, which is the root of the hierarchy on the layouts
// kubelets use (the kubelet in system.slice or its own cgroup, pods in kubepods); on
// any other layout the path does not exist and the agent refuses to start. The result
// must exist; nothing is guessed: a wrong cgroup would trust the wrong processes with
// the pods' probe ports.

export const KUBELET_COMM = 'kubelet'

export interface KubeletCgroupOptions {
  /** The host's procfs (--host-proc). */
  readonly procRoot: string
  /** The host's cgroup mount (--cgroup-root); its cgroup v2 part is used. */
  readonly cgroupMount: string
}

/** The kubelet's cgroup v2 directory under the host's mount. Throws FERRY_ERR_KUBELET_CGROUP. */
export function findKubeletCgroup (opts: KubeletCgroupOptions): string {
  const fail = (why: string): never => {
    throw ferryError('FERRY_ERR_KUBELET_CGROUP', `--kubelet-cgroup auto: ${why}; pass the kubelet's cgroup directory with --kubelet-cgroup PATH`)
  }
  const byPath = new Map<string, number[]>()
  for (const pid of kubeletPids(opts.procRoot)) {
    const path = cgroup2Path(join(opts.procRoot, String(pid), 'cgroup'))
    if (path === null) continue
    byPath.set(path, [...(byPath.get(path) ?? []), pid])
  }
  if (byPath.size === 0) fail(`no process named ${KUBELET_COMM} with a cgroup v2 path under ${opts.procRoot}`)
  if (byPath.size > 1) fail(`processes named ${KUBELET_COMM} in ${byPath.size} cgroups (${[...byPath].map(([p, pids]) => `${p}: ${pids.join(',')}`).join('; ')})`)
  const [path] = [...byPath.keys()]
  const parts = path.split('/').filter((c) => c !== '' && c !== '..')
  if (parts.length === 0) fail(`the kubelet runs in the root cgroup (${path}): every process of the node is in it`)
  const dir = join(cgroup2Under(opts.cgroupMount), ...parts)
  let isDir = false
  try { isDir = statSync(dir).isDirectory() } catch {}
  if (!isDir) fail(`the kubelet's cgroup ${path} is not at ${dir}`)
  return dir
}

function kubeletPids (procRoot: string): number[] {
  let entries: string[]
  try {
    entries = readdirSync(procRoot)
  } catch (err) {
    throw ferryError('FERRY_ERR_KUBELET_CGROUP', `--kubelet-cgroup auto: cannot read ${procRoot}: ${(err as Error).message}`, { cause: err })
  }
  const out: number[] = []
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (readFileSync(join(procRoot, name, 'comm'), 'utf8').trim() === KUBELET_COMM) out.push(Number(name))
    } catch {} // exited during the scan
  }
  return out.sort((a, b) => a - b)
}

/** The "0::<path>" line of a /proc/<pid>/cgroup file, or null (no cgroup v2, or the process exited). */
function cgroup2Path (file: string): string | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return null
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'))
  return line === undefined ? null : line.slice(3)
}
