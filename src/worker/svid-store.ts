import type { Pod } from '../discovery/model'
import { formatSpiffeId } from '../identity/spiffe-id'
import type { Svid } from '../identity/svid'
import type { PodIdentities } from '../proxy/mesh'

// A worker's copy of the node's certificates: the main thread's identities
// (src/agent/identities.ts) publish every SVID in use whenever one changes; the worker's
// tunnel server and pool read them here at each handshake and open.

export class SvidStore implements PodIdentities {
  private svids = new Map<string, Svid>()

  constructor (readonly trustDomain: string) {}

  spiffeIdOf (pod: Pod): string {
    return formatSpiffeId({ trustDomain: this.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccountName })
  }

  svidFor (spiffeId: string): Svid | null {
    return this.svids.get(spiffeId) ?? null
  }

  replace (svids: ReadonlyArray<readonly [string, Svid]>): void {
    this.svids = new Map(svids)
  }
}
