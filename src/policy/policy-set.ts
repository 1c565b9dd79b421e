import type { ConfigSnapshot } from '../resources/snapshot'
import { AuthorizationEngine } from './evaluator'
import { MtlsModes } from './peer-authentication'

// Everything the data path asks of one configuration snapshot, compiled once when the
// snapshot arrives. Swapping the PolicySet reference is the whole update: connections
// that start after the swap see the new policy.

export interface PolicySet {
  readonly generation: number
  readonly snapshot: ConfigSnapshot
  readonly authz: AuthorizationEngine
  readonly mtls: MtlsModes
}

export function compilePolicySet (snapshot: ConfigSnapshot): PolicySet {
  const opts = { rootNamespace: snapshot.rootNamespace }
  return Object.freeze({
    generation: snapshot.generation,
    snapshot,
    authz: AuthorizationEngine.compile(snapshot.authorizationPolicies, opts),
    mtls: MtlsModes.compile(snapshot.peerAuthentications, opts)
  })
}
