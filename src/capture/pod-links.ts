import { existsSync, readdirSync } from 'node:fs'
import { BpfLink, type Netns } from '../native'
import type { Logger } from '../telemetry/logger'
import { ensurePinnedLink, retireLink } from './pinned-link'
import type { PinLayout } from './pins'
import { HOOKS, type Programs } from './programs'

// A pod's bpf links, pinned at <pinRoot>/pods/<uid>/<prog>, each made once and adopted
// in place by later agents (pinned-link.ts).

export interface PodTarget { cgroupPath: string, netns: Netns }

export function ensurePodLinks (programs: Programs, pins: PinLayout, uid: string, target: PodTarget, log: Logger): Map<string, BpfLink> {
  pins.makePodDir(uid)
  const links = new Map<string, BpfLink>()
  const podLog = log.child({ uid })
  try {
    for (const hook of HOOKS) links.set(hook.prog, ensurePinnedLink(programs, pins.linkPath(uid, hook.prog), hook, target, podLog))
  } catch (err) {
    for (const l of links.values()) l.close()
    throw err
  }
  return links
}

/** Detaches, unpins and closes every link of the pod, pinned or open, and its pin directory. */
export function removePodLinks (pins: PinLayout, uid: string, open: Map<string, BpfLink> | undefined, log: Logger): void {
  const dir = pins.podDir(uid)
  const names = existsSync(dir) ? readdirSync(dir) : []
  for (const name of names) retireLink(open?.get(name) ?? BpfLink.openPinned(pins.linkPath(uid, name)), log)
  for (const [name, link] of open ?? []) if (!names.includes(name)) retireLink(link, log)
  pins.removePodDir(uid)
}
