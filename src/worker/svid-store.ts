import type { Pod } from '../discovery/model'
import { formatSpiffeId } from '../identity/spiffe-id'
import type { Svid } from '../identity/svid'
import type { PodIdentities } from '../proxy/mesh'

// A worker's copy of the node's certificates: the main thread (src/agent/svid-publisher.ts)
// publishes every SVID in use whenever one comes, goes or is rotated; the worker's tunnel
// server and pool read them here at each handshake and open.
//
// A publication crosses the thread boundary as a structured clone, so every SVID in it
// arrives as a new object. The tunnel tells a rotation by object identity (a pooled or
// served session made with another Svid object than the current one drains), and keys
// the SecureContext of an SVID and its parsed trust bundle on the object. So the store
// keeps the object it holds for a certificate that did not change: a publication about
// another identity neither drains this one's sessions nor makes the worker build its
// SecureContext (≈36 KiB of OpenSSL memory, which V8 does not see) again.

export class SvidStore implements PodIdentities {
  private svids = new Map<string, Svid>()

  constructor (readonly trustDomain: string) {}

  spiffeIdOf (pod: Pod): string {
    return formatSpiffeId({ trustDomain: this.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccountName })
  }

  svidFor (spiffeId: string): Svid | null {
    return this.svids.get(spiffeId) ?? null
  }

  /** The certificates in use now, by SPIFFE ID; one that did not change keeps its object. */
  replace (svids: ReadonlyArray<readonly [string, Svid]>): void {
    const next = new Map<string, Svid>()
    for (const [id, svid] of svids) {
      const held = this.svids.get(id)
      next.set(id, held !== undefined && sameCertificate(held, svid) ? held : svid)
    }
    this.svids = next
  }
}

/** The same key, chain and trust bundle: one SVID, whichever copy. */
function sameCertificate (a: Svid, b: Svid): boolean {
  return a.serial === b.serial && a.key === b.key && samePems(a.chain, b.chain) && samePems(a.bundle, b.bundle)
}

function samePems (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((pem, i) => pem === b[i])
}
