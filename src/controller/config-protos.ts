import type * as grpc from '@grpc/grpc-js'
import { loadProtoPackage } from '../identity/protos'

// ferry.config.v1.ConfigService (proto/ferry/config/v1/config.proto), loaded once, on
// first use, the way the CA's protos are (snake_case fields, uint64 as a JS number).
// Shared by both ends: the controller's service and the agent's ConfigStream.

export const CONFIG_SERVICE_NAME = 'ferry.config.v1.ConfigService'

export interface DocumentMessage { name: string, text: string, line?: number }

export interface IssueMessage { file: string, line?: number, object?: string, field?: string, message: string }

export interface ObjectReportMessage {
  object: string
  key?: string
  api_version?: string
  file: string
  line?: number
  in_force?: string
  note?: string
  issues: IssueMessage[]
  refusal?: string
}

export interface ConfigSnapshotMessage {
  version: number
  controller: string
  origin: string
  root_namespace: string
  documents: DocumentMessage[]
  refused?: ObjectReportMessage[]
}

export type AgentMessage =
  | { ack: { version: number, refused?: string[] }, message?: 'ack' }
  | { nack: { version: number, reasons: string[] }, message?: 'nack' }

export interface ConfigProtos {
  readonly configService: grpc.ServiceDefinition
  readonly ConfigClient: grpc.ServiceClientConstructor
}

let loaded: ConfigProtos | undefined

export function configProtos (): ConfigProtos {
  if (loaded !== undefined) return loaded
  const pkg = loadProtoPackage(['ferry/config/v1/config.proto'])
  const ConfigClient = pkg.ferry.config.v1.ConfigService as grpc.ServiceClientConstructor
  loaded = Object.freeze({ configService: ConfigClient.service, ConfigClient })
  return loaded
}
