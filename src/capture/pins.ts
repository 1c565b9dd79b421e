import { existsSync, readdirSync, rmdirSync, unlinkSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

// Where a pod's link pins live: <pinRoot>/pods/<uid>/<prog>. Maps are pinned by
// libbpf directly under <pinRoot>/, and so is the one link not made per pod (sk_msg
// on ferry_socks) as <pinRoot>/link_<prog>.

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

  /** Removes whatever pins are left in the pod's directory, then the directory. */
  removePodDir (uid: string): void {
    const dir = this.podDir(uid)
    if (!existsSync(dir)) return
    for (const name of readdirSync(dir)) unlinkSync(join(dir, name))
    rmdirSync(dir)
  }
}
