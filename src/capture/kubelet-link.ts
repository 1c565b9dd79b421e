import { existsSync, statSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { ferryError } from '../errors'
import { BpfLink } from '../native'
import type { Logger } from '../telemetry/logger'
import { ensurePinnedLink, retireLink } from './pinned-link'
import type { PinLayout } from './pins'
import { KUBELET_HOOK, type Programs } from './programs'

// Probe admission's link: bpf/kubelet.bpf.c on the kubelet's cgroup, pinned at
// <pinRoot>/link_ferry_kubelet_sockops so that it outlives the agent (probes keep
// working while the agent restarts) and a restarted agent updates it in place.

/**
 * Refuses what cannot be the kubelet's cgroup: a path that is not a cgroup v2 directory,
 * and the root of the hierarchy (every process of the node is below it: the program would
 * take any node process, hostNetwork pods included, for the kubelet). Only non-root
 * cgroup v2 directories have cgroup.type.
 */
export function checkKubeletCgroup (path: string): void {
  const bad = (why: string): never => { throw ferryError('FERRY_ERR_KUBELET_CGROUP', `kubelet cgroup ${path}: ${why}`) }
  if (typeof path !== 'string' || !isAbsolute(path)) bad('must be an absolute path')
  let isDir = false
  try { isDir = statSync(path).isDirectory() } catch {}
  if (!isDir) bad('does not exist')
  if (!existsSync(join(path, 'cgroup.procs'))) bad('is not a cgroup v2 directory (no cgroup.procs)')
  if (!existsSync(join(path, 'cgroup.type'))) bad('is the root of the cgroup hierarchy: every process of the node is in it')
}

export function ensureKubeletLink (programs: Programs, pins: PinLayout, cgroupPath: string, log: Logger): BpfLink {
  checkKubeletCgroup(cgroupPath)
  try {
    return ensurePinnedLink(programs, pins.nodeLinkPath(KUBELET_HOOK.prog), KUBELET_HOOK, { cgroupPath }, log)
  } catch (err) {
    throw ferryError('FERRY_ERR_KUBELET_CGROUP', `cannot attach probe admission to the kubelet cgroup ${cgroupPath}: ${(err as Error).message}`, { cause: err, errno: (err as { errno?: string }).errno })
  }
}

/** Detaches and unpins the pinned link, if an agent left one. True if there was one. */
export function removeKubeletLink (pins: PinLayout, log: Logger): boolean {
  const path = pins.nodeLinkPath(KUBELET_HOOK.prog)
  if (!existsSync(path)) return false
  retireLink(BpfLink.openPinned(path), log)
  return true
}
