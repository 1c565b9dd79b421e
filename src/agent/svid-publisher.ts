import type { Pod } from '../discovery/model'
import type { Svid } from '../identity/svid'
import type { Publication } from '../worker/protocol'
import type { WorkloadIdentity } from './identities'

// What the workers present on the tunnel: the identities of the pods enrolled here and
// their current certificates, published to every worker (src/worker/svid-store.ts) only
// when that changes — an identity comes or goes, a certificate arrives or is rotated.
// Enrollment changes that touch no identity publish nothing: a node enrolling 100 pods
// of 10 service accounts publishes about 20 times (10 identities, 10 first certificates),
// not 100, and each publication is a structured clone of every SVID for every worker.

export class SvidPublisher {
  private served: readonly string[] = []
  private svids: ReadonlyArray<readonly [string, Svid]> = []

  constructor (private readonly identities: Pick<WorkloadIdentity, 'spiffeIdOf' | 'svidFor'>, private readonly publish: (p: Extract<Publication, { kind: 'svids' }>) => void) {}

  /** Publishes the identities of `pods` (the enrolled pods) and their certificates, if they differ from what the workers have. */
  update (pods: readonly Pod[]): void {
    const served = [...new Set(pods.map((p) => this.identities.spiffeIdOf(p)))].sort()
    const svids = served.flatMap((id) => { const svid = this.identities.svidFor(id); return svid === null ? [] : [[id, svid] as const] })
    if (sameList(served, this.served) && svids.length === this.svids.length && svids.every(([id, s], i) => this.svids[i][0] === id && this.svids[i][1] === s)) return
    this.served = served
    this.svids = svids
    this.publish({ kind: 'svids', svids, served })
  }
}

function sameList (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
