import type { SpiffeId } from '../identity/spiffe-id'
import type { Caller } from './authn'

// May this caller hold this identity? The controller asks after authenticating the caller
// and reading the identity from the CSR, before signing. Decisions are synchronous and
// from memory (the implementation keeps its own index current); a refusal carries a
// reason for the log and the caller.

export type AuthzDecision =
  | { readonly allowed: true }
  | { readonly allowed: false, readonly reason: string }

export interface Authorizer {
  authorize (caller: Caller, id: SpiffeId): AuthzDecision
  /** Resolves once the authorizer can decide (its first pod list is in). */
  whenLoaded (): Promise<void>
  close (): void
}
