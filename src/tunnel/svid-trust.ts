import { trustBundleOf, type TrustBundle } from '../identity/peer-verify'
import type { Svid } from '../identity/svid'

// The trust bundle a tunnel end verifies its peer against is the bundle of the SVID it
// presents on that connection: the same roots its SecureContext gives OpenSSL
// (svidContextOptions' `ca`), so verifyTlsPeer's JavaScript check and OpenSSL's verdict
// judge against one set of roots. Parsed once per SVID (SVIDs are immutable).

const bundles = new WeakMap<Svid, TrustBundle>()

export function trustOf (svid: Svid): TrustBundle {
  let trust = bundles.get(svid)
  if (trust === undefined) {
    trust = trustBundleOf(svid.spiffeId.trustDomain, svid.bundle)
    bundles.set(svid, trust)
  }
  return trust
}
