import type * as grpc from '@grpc/grpc-js'
import type { TrustBundleResponseMessage } from '../identity/protos'
import type { CertificateIssuer } from './issuer'

// ferry.ca.v1.TrustBundleService/GetTrustBundle: the roots of the trust domain. Public
// information, so no credential is asked for; the TLS channel still authenticates the
// controller to the caller.

export function trustBundleServiceHandlers (deps: { trustDomain: string, issuer: CertificateIssuer }): grpc.UntypedServiceImplementation {
  return {
    GetTrustBundle (_call: grpc.ServerUnaryCall<unknown, TrustBundleResponseMessage>, callback: grpc.sendUnaryData<TrustBundleResponseMessage>) {
      callback(null, { trust_domain: deps.trustDomain, roots: deps.issuer.bundle() })
    }
  }
}
