import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { REPO_ROOT } from '../native/binding'

// The gRPC API between agents and the controller, loaded from proto/ once, on first use.
// Field names keep the .proto's snake_case (keepCase) so messages read like Istio's docs;
// int64 arrives as a JS number (seconds of validity are far below 2^53).

export const PROTO_DIR = join(REPO_ROOT, 'proto')
export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService'
export const BUNDLE_SERVICE_NAME = 'ferry.ca.v1.TrustBundleService'

/** google.protobuf.Struct as proto-loader presents it. */
export interface StructMessage {
  fields: Record<string, { stringValue?: string, numberValue?: number, boolValue?: boolean, [k: string]: unknown }>
}

export interface CertificateRequestMessage {
  csr: string
  /** Seconds; 0: the CA's default. */
  validity_duration: number
  metadata?: StructMessage | null
}

export interface CertificateResponseMessage {
  cert_chain: string[]
}

export interface TrustBundleResponseMessage {
  trust_domain: string
  roots: string[]
}

export interface CaProtos {
  readonly certificateService: grpc.ServiceDefinition
  readonly trustBundleService: grpc.ServiceDefinition
  readonly CertificateClient: grpc.ServiceClientConstructor
  readonly TrustBundleClient: grpc.ServiceClientConstructor
}

/** The package tree of `files` (paths under proto/), with the options every Ferry API uses. */
export function loadProtoPackage (files: string[]): any {
  const def = protoLoader.loadSync(files, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true
  })
  return grpc.loadPackageDefinition(def)
}

let loaded: CaProtos | undefined

export function caProtos (): CaProtos {
  if (loaded !== undefined) return loaded
  const pkg = loadProtoPackage(['istio/v1/auth/ca.proto', 'ferry/ca/v1/trust_bundle.proto'])
  const CertificateClient = pkg.istio.v1.auth.IstioCertificateService as grpc.ServiceClientConstructor
  const TrustBundleClient = pkg.ferry.ca.v1.TrustBundleService as grpc.ServiceClientConstructor
  loaded = Object.freeze({
    certificateService: CertificateClient.service,
    trustBundleService: TrustBundleClient.service,
    CertificateClient,
    TrustBundleClient
  })
  return loaded
}
