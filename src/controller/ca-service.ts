import * as grpc from '@grpc/grpc-js'
import { isFerryError } from '../errors'
import { parseCsr, type ParsedCsr } from '../identity/csr'
import type { Clock } from '../identity/clock'
import type { CertificateRequestMessage, CertificateResponseMessage } from '../identity/protos'
import type { Logger } from '../telemetry/logger'
import { bearerToken, type Authenticator } from './authn'
import type { Authorizer } from './authz'
import type { CertificateIssuer } from './issuer'

// istio.v1.auth.IstioCertificateService/CreateCertificate, as a pipeline of small stages:
//
//   authenticate  bearer token → caller's node           else UNAUTHENTICATED (FERRY_ERR_AUTHN),
//                                                         or UNAVAILABLE when it cannot be checked
//   parse CSR     signature, key, exactly one SPIFFE URI  else INVALID_ARGUMENT (FERRY_ERR_CSR)
//   lifetime      0 → the maximum; else min(asked, max)   negative: INVALID_ARGUMENT
//   authorize     a pod with that identity on that node   else PERMISSION_DENIED (FERRY_ERR_AUTHZ)
//   sign          leaf + root                             else INTERNAL
//
// The identity requested is the CSR's URI SAN: the request's metadata Struct (istio-agent
// sends ClusterID, and ztunnel an ImpersonatedIdentity) is read by no stage, since the
// SAN already names the identity and node authorization decides whether the caller may
// hold it. Every refusal is logged with the caller, the identity and the reason, and the
// status message starts with the Ferry error code.

export interface CaServiceDeps {
  readonly authenticator: Authenticator
  readonly authorizer: Authorizer
  readonly issuer: CertificateIssuer
  /** Longest lifetime issued, and the lifetime of requests that name none. */
  readonly maxTtlMs: number
  readonly clock: Clock
  readonly log: Logger
}

export class Refusal extends Error {
  constructor (readonly status: grpc.status, readonly code: string, readonly reason: string) { super(reason) }
}

/** A failed authentication as a gRPC answer: UNAUTHENTICATED, or UNAVAILABLE (retry) when the credential could not be checked. */
export function authnRefusal (authn: { reason: string, unavailable?: boolean }): Refusal {
  return authn.unavailable === true
    ? new Refusal(grpc.status.UNAVAILABLE, 'FERRY_ERR_AUTHN_UNAVAILABLE', authn.reason)
    : new Refusal(grpc.status.UNAUTHENTICATED, 'FERRY_ERR_AUTHN', authn.reason)
}

export function certificateServiceHandlers (deps: CaServiceDeps): grpc.UntypedServiceImplementation {
  const log = deps.log.child({ service: 'IstioCertificateService' })
  return {
    CreateCertificate (call: grpc.ServerUnaryCall<CertificateRequestMessage, CertificateResponseMessage>, callback: grpc.sendUnaryData<CertificateResponseMessage>) {
      const peer = call.getPeer()
      const context: { peer: string, node?: string, principal?: string, identity?: string } = { peer }
      createCertificate(deps, call, context).then((chain) => { callback(null, { cert_chain: chain }) }, (err) => {
        if (err instanceof Refusal) {
          log.warn({ ...context, code: err.code, status: grpc.status[err.status], reason: err.reason }, 'certificate request refused')
          callback({ code: err.status, details: `${err.code}: ${err.reason}` })
        } else {
          log.error({ ...context, err }, 'certificate request failed')
          callback({ code: grpc.status.INTERNAL, details: 'the CA could not sign the request' })
        }
      })
    }
  }
}

async function createCertificate (deps: CaServiceDeps, call: grpc.ServerUnaryCall<CertificateRequestMessage, unknown>,
  context: { node?: string, principal?: string, identity?: string }): Promise<string[]> {
  const token = bearerToken(call.metadata)
  if (token === undefined) throw new Refusal(grpc.status.UNAUTHENTICATED, 'FERRY_ERR_AUTHN', 'the "authorization" metadata is not "Bearer <token>"')
  const authn = await deps.authenticator.authenticate(token)
  if (!authn.ok) throw authnRefusal(authn)
  context.node = authn.caller.node
  context.principal = authn.caller.principal

  let csr: ParsedCsr
  try {
    csr = await parseCsr(call.request.csr)
  } catch (err) {
    if (isFerryError(err, 'FERRY_ERR_CSR')) throw new Refusal(grpc.status.INVALID_ARGUMENT, err.code, err.message)
    throw err
  }
  context.identity = csr.spiffeId.uri

  const asked = Number(call.request.validity_duration)
  if (!Number.isFinite(asked) || asked < 0) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'FERRY_ERR_CSR', `validity_duration ${String(call.request.validity_duration)} is negative`)
  const ttlMs = asked === 0 ? deps.maxTtlMs : Math.min(asked * 1000, deps.maxTtlMs)

  const decision = deps.authorizer.authorize(authn.caller, csr.spiffeId)
  if (!decision.allowed) throw new Refusal(grpc.status.PERMISSION_DENIED, 'FERRY_ERR_AUTHZ', `node ${authn.caller.node} may not obtain ${csr.spiffeId.uri}: ${decision.reason}`)

  const leaf = await deps.issuer.issueWorkload(csr, csr.spiffeId, ttlMs, deps.clock.now())
  deps.log.info({ ...context, serial: leaf.serial, notAfter: new Date(leaf.notAfter).toISOString() }, 'certificate issued')
  return deps.issuer.chainOf(leaf.pem)
}
