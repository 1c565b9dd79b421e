import { existsSync, readdirSync, statSync } from 'node:fs'
import { BpfLink, type Netns } from '../native'
import type { Logger } from '../telemetry/logger'
import type { PinLayout } from './pins'
import { HOOKS, type Hook, type Programs } from './programs'

// A pod's bpf links, pinned at <pinRoot>/pods/<uid>/<prog>. A pinned link from an
// earlier agent is reopened and switched to the newly loaded program in place
// (BPF_LINK_UPDATE), never attached a second time; one whose cgroup or namespace
// is not the pod's any more (pod sandbox recreated under the same uid) is replaced.

export interface PodTarget { cgroupPath: string, netns: Netns }

const BPF_LINK_TYPE_CGROUP = 3
const BPF_LINK_TYPE_NETNS = 5

export function ensurePodLinks (programs: Programs, pins: PinLayout, uid: string, target: PodTarget, log: Logger): Map<string, BpfLink> {
  pins.makePodDir(uid)
  const links = new Map<string, BpfLink>()
  try {
    for (const hook of HOOKS) links.set(hook.prog, ensureLink(programs, pins, uid, hook, target, log))
  } catch (err) {
    for (const l of links.values()) l.close()
    throw err
  }
  return links
}

function ensureLink (programs: Programs, pins: PinLayout, uid: string, hook: Hook, target: PodTarget, log: Logger): BpfLink {
  const path = pins.linkPath(uid, hook.prog)
  if (existsSync(path)) {
    const link = BpfLink.openPinned(path)
    if (attachedTo(link, hook, target)) {
      link.update(programs.progFd(hook))
      log.debug({ uid, prog: hook.prog, link: link.info().id }, 'reused pinned link')
      return link
    }
    log.info({ uid, prog: hook.prog }, 'pinned link points at an old cgroup or netns; replacing it')
    retire(link, log)
  }
  const link = programs.attach(hook, { cgroupPath: target.cgroupPath, netnsFd: target.netns.fd })
  try {
    link.pin(path)
  } catch (err) {
    link.close() // unpinned: closing detaches it
    throw err
  }
  return link
}

function attachedTo (link: BpfLink, hook: Hook, target: PodTarget): boolean {
  const info = link.info()
  if (hook.target === 'cgroup') {
    return info.type === BPF_LINK_TYPE_CGROUP && info.cgroupId === statSync(target.cgroupPath, { bigint: true }).ino
  }
  return info.type === BPF_LINK_TYPE_NETNS && info.netnsIno === target.netns.inode
}

/** Detaches, unpins and closes every link of the pod, pinned or open, and its pin directory. */
export function removePodLinks (pins: PinLayout, uid: string, open: Map<string, BpfLink> | undefined, log: Logger): void {
  const dir = pins.podDir(uid)
  const names = existsSync(dir) ? readdirSync(dir) : []
  for (const name of names) retire(open?.get(name) ?? BpfLink.openPinned(pins.linkPath(uid, name)), log)
  for (const [name, link] of open ?? []) if (!names.includes(name)) retire(link, log)
  pins.removePodDir(uid)
}

function retire (link: BpfLink, log: Logger): void {
  try {
    link.detach()
  } catch (err) {
    // A link whose cgroup or netns is already gone may refuse; unpinning frees it anyway.
    log.debug({ err }, 'detach of a pod link failed')
  }
  link.unpin()
  link.close()
}
