import type { Metadata } from '@grpc/grpc-js'

// Who is asking: agents authenticate to the controller with a bearer credential in gRPC
// metadata ("authorization: Bearer <token>", as istio-agent sends its service-account
// token). An Authenticator turns the credential into the node the caller runs on.
//
// The lab's implementation (authn-lab.ts) looks the token up in a file the lab writes.
// The Kubernetes one (authn-token-review.ts) sends the token to the API server's
// TokenReview (audience "ferry-ca"), requires the user
// system:serviceaccount:<ferry ns>:<agent sa>, and takes the node from the bound token's
// extra "authentication.kubernetes.io/node-name".

export interface Caller {
  /** The node the caller runs on: the only node whose pods' identities it may obtain. */
  readonly node: string
  /** Who the credential says the caller is, for logs ("lab-node:node-1", a service account …). */
  readonly principal: string
}

export type AuthnResult =
  | { readonly ok: true, readonly caller: Caller }
  /**
   * `unavailable`: the credential could not be checked (the API server did not answer),
   * so the caller should retry; otherwise the credential was checked and refused.
   */
  | { readonly ok: false, readonly reason: string, readonly unavailable?: boolean }

export interface Authenticator {
  /** Names the implementation in logs ("lab-tokens", "kubernetes-token-review"). */
  readonly kind: string
  /** `token` is the bearer credential, or null when none was sent. Bad credentials are results, never throws. */
  authenticate (token: string | null): Promise<AuthnResult>
  close (): void
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/

/** The bearer token of a call; null when absent, undefined when present but not a bearer token. */
export function bearerToken (metadata: Metadata): string | null | undefined {
  const values = metadata.get('authorization')
  if (values.length === 0) return null
  if (values.length > 1 || typeof values[0] !== 'string') return undefined
  return BEARER.exec(values[0])?.[1]
}
