import type { Pod } from '../discovery/model'

// Which AuthorizationPolicy with L7 fields selects a pod on a port (its "ns/name" ref),
// or null: what engages L7 at the destination besides the switches. Authorization owns
// the answer (InboundAuthorizer.l7PolicyFor, src/proxy/authorize.ts); this file only
// names its shape, so L7 engagement and its explanations do not depend on how policies
// are compiled.

export type L7PolicyLookup = (pod: Pod, port: number) => string | null

/** No policy engages L7 (no configuration, or an authorizer without L7 rules). */
export const NO_L7_POLICY: L7PolicyLookup = () => null

/** The authorizer's l7PolicyFor, bound; NO_L7_POLICY for an authorizer that has none. */
export function l7PolicyLookupOf (authz: object): L7PolicyLookup {
  const lookup = (authz as { l7PolicyFor?: unknown }).l7PolicyFor
  return typeof lookup === 'function' ? (pod, port) => (lookup as L7PolicyLookup).call(authz, pod, port) : NO_L7_POLICY
}
