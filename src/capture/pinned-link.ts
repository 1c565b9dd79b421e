import { existsSync, statSync } from 'node:fs'
import { BpfLink, type Netns } from '../native'
import type { Logger } from '../telemetry/logger'
import type { Hook, Programs } from './programs'

// One bpf link pinned at a path, made once and adopted by every later agent: a pinned
// link still attached to the wanted cgroup or netns is reopened and switched to the
// newly loaded program in place (BPF_LINK_UPDATE), never attached a second time; one
// attached elsewhere (a sandbox recreated under the same uid, a kubelet cgroup that
// changed) is replaced.

/** Where a hook attaches: a cgroup v2 directory, or a network namespace for netns hooks. */
export interface LinkTarget { cgroupPath: string, netns?: Netns }

const BPF_LINK_TYPE_CGROUP = 3
const BPF_LINK_TYPE_NETNS = 5

export function ensurePinnedLink (programs: Programs, path: string, hook: Hook, target: LinkTarget, log: Logger): BpfLink {
  if (existsSync(path)) {
    const link = BpfLink.openPinned(path)
    if (attachedTo(link, hook, target)) {
      link.update(programs.progFd(hook))
      log.debug({ path, prog: hook.prog, link: link.info().id }, 'reused pinned link')
      return link
    }
    log.info({ path, prog: hook.prog }, 'pinned link points at an old cgroup or netns; replacing it')
    retireLink(link, log)
  }
  if (hook.target === 'netns' && target.netns === undefined) throw new Error(`${hook.prog} attaches to a netns and none was given`)
  const link = programs.attach(hook, { cgroupPath: target.cgroupPath, netnsFd: target.netns?.fd ?? -1 })
  try {
    link.pin(path)
  } catch (err) {
    link.close() // unpinned: closing detaches it
    throw err
  }
  return link
}

function attachedTo (link: BpfLink, hook: Hook, target: LinkTarget): boolean {
  const info = link.info()
  if (hook.target === 'cgroup') {
    return info.type === BPF_LINK_TYPE_CGROUP && info.cgroupId === statSync(target.cgroupPath, { bigint: true }).ino
  }
  return info.type === BPF_LINK_TYPE_NETNS && info.netnsIno === target.netns?.inode
}

/** Detaches, unpins and closes a link. */
export function retireLink (link: BpfLink, log: Logger): void {
  try {
    link.detach()
  } catch (err) {
    // A link whose cgroup or netns is already gone may refuse; unpinning frees it anyway.
    log.debug({ err }, 'detach of a link failed')
  }
  link.unpin()
  link.close()
}
