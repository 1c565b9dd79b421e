import * as grpc from '@grpc/grpc-js'
import { ferryError } from '../errors'

// The controller's gRPC server: TLS with the CA's own serving certificate, no client
// certificates (agents authenticate with bearer tokens), small messages in (a CSR is
// about a kilobyte, an ACK a few bytes; nothing legitimate comes near the limit), larger
// ones out (a configuration snapshot holds every policy of the mesh).

const MAX_MESSAGE_BYTES = 64 * 1024
/** Largest configuration snapshot sent; agents accept the same (config-stream.ts). */
export const MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024
/** Calls in flight get this long to finish on close before they are cut. */
const SHUTDOWN_GRACE_MS = 2000

export interface GrpcServiceBinding {
  readonly definition: grpc.ServiceDefinition
  readonly handlers: grpc.UntypedServiceImplementation
}

export class CaGrpcServer {
  private constructor (private readonly server: grpc.Server, readonly host: string, readonly port: number) {}

  static async start (opts: { host: string, port: number, keyPem: string, certChainPem: string, services: readonly GrpcServiceBinding[] }): Promise<CaGrpcServer> {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_SEND_MESSAGE_BYTES })
    for (const s of opts.services) server.addService(s.definition, s.handlers)
    const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(opts.keyPem), cert_chain: Buffer.from(opts.certChainPem) }], false)
    const target = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(target, creds, (err, bound) => {
        if (err !== null) reject(ferryError('FERRY_ERR_LISTEN', `cannot listen on ${target}: ${err.message}`, { cause: err }))
        else resolve(bound)
      })
    })
    return new CaGrpcServer(server, opts.host, port)
  }

  /** host:port as agents dial it. */
  get address (): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`
  }

  async close (): Promise<void> {
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => { this.server.forceShutdown(); resolve() }, SHUTDOWN_GRACE_MS)
      this.server.tryShutdown(() => { clearTimeout(force); resolve() })
    })
  }
}
