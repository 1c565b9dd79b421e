import { existsSync, readdirSync, rmdirSync, unlinkSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

// Where a pod's link pins live: <pinRoot>/pods/<uid>/<prog>. Maps are pinned by
// libbpf directly under <pinRoot>/, and so is the one link not made per pod (sk_msg
// on ferry_socks) as <pinRoot>/link_<prog>.

/**
 * Maps an earlier Ferry pinned that no program of this one uses: removed at open, so
 * their kernel memory is freed once the last program holding them is gone (an earlier
 * agent still draining keeps its own reference). ferry_sock_addrs: the sockmap
 * shortcut's raw socket addresses, replaced by ferry_sock_peers and ferry_sock_state.
 */
const RETIRED_MAPS: readonly string[] = Object.freeze(['ferry_sock_addrs'])

export class PinLayout {
  readonly root: string
  constructor (root: string) { this.root = root }

  get podsDir (): string { return join(this.root, 'pods') }
  podDir (uid: string): string { return join(this.podsDir, uid) }
  linkPath (uid: string, prog: string): string { return join(this.podDir(uid), prog) }

  nodeLinkPath (prog: string): string { return join(this.root, `link_${prog}`) }

  makePodDir (uid: string): void { mkdirSync(this.podDir(uid), { recursive: true, mode: 0o700 }) }

  /** Uids that have a pin directory (enrolled by this or an earlier agent). */
  podUids (): string[] {
    return existsSync(this.podsDir) ? readdirSync(this.podsDir) : []
  }

  /** Unpins the retired maps an earlier agent left; the names it removed. */
  removeRetiredMaps (): string[] {
    const removed = RETIRED_MAPS.filter((name) => existsSync(join(this.root, name)))
    for (const name of removed) unlinkSync(join(this.root, name))
    return removed
  }

  /** Removes whatever pins are left in the pod's directory, then the directory. */
  removePodDir (uid: string): void {
    const dir = this.podDir(uid)
    if (!existsSync(dir)) return
    for (const name of readdirSync(dir)) unlinkSync(join(dir, name))
    rmdirSync(dir)
  }
}
