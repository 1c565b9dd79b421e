import { readFile } from 'node:fs/promises'
import * as grpc from '@grpc/grpc-js'
import { ferryError, type FerryError } from '../errors'
import { caProtos, type CertificateRequestMessage, type CertificateResponseMessage, type StructMessage, type TrustBundleResponseMessage } from './protos'

// The agent's side of the certificate API: Istio's IstioCertificateService (so the agent
// can as well ask istiod) plus Ferry's TrustBundleService, over TLS to the controller,
// trusting only the roots it is given. Each call carries "authorization: Bearer <token>";
// the token is fetched per call, because projected service-account tokens rotate.
//
// Failures become FerryErrors: FERRY_ERR_CA_REFUSED when the CA answered no
// (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION), else
// FERRY_ERR_CA_UNAVAILABLE. Retrying is the caller's business (CertificateManager), and
// so is its pace: after an UNAVAILABLE answer the channel is dropped and the next call
// dials afresh. gRPC's own reconnect backoff would otherwise grow during a long CA
// outage and hold the first calls after the CA's return back for up to its maximum —
// time a certificate near its expiry does not have.

/** What the CertificateManager needs from a CA. */
export interface CertificateSigner {
  /** Sends a PEM CSR; resolves to the PEM chain, leaf first and root last. */
  createCertificate (csrPem: string, validitySeconds: number): Promise<string[]>
}

export interface CaClientOptions {
  /** host:port of the controller (or istiod's 15012). */
  readonly address: string
  /** PEM roots that the controller's serving certificate must chain to. */
  readonly caRootsPem: string
  /** The bearer credential, fetched before every call. */
  readonly token: () => string | Promise<string>
  /** TLS name to check in the serving certificate instead of the address's host. */
  readonly serverName?: string
  /** Deadline of each call; default 10 s. */
  readonly callTimeoutMs?: number
  /** gRPC's own reconnect backoff; keep its maximum near the manager's retry maximum. */
  readonly reconnectBackoffMs?: { readonly initial: number, readonly max: number }
  /** Sent as the request's metadata Struct (istio-agent sends ClusterID and the like). */
  readonly metadata?: Readonly<Record<string, string>>
}

export const CA_CLIENT_DEFAULTS = Object.freeze({ callTimeoutMs: 10_000, reconnectBackoffMs: Object.freeze({ initial: 1000, max: 30_000 }) })

const REFUSALS = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION])

interface Clients { readonly certificates: grpc.Client, readonly bundles: grpc.Client }

export class CaClient implements CertificateSigner {
  private clients: Clients | null = null
  private closed = false
  private readonly timeoutMs: number
  private readonly metadata: StructMessage | null

  constructor (private readonly opts: CaClientOptions) {
    this.timeoutMs = opts.callTimeoutMs ?? CA_CLIENT_DEFAULTS.callTimeoutMs
    this.metadata = opts.metadata === undefined
      ? null
      : { fields: Object.fromEntries(Object.entries(opts.metadata).map(([k, v]) => [k, { stringValue: v }])) }
  }

  async createCertificate (csrPem: string, validitySeconds: number): Promise<string[]> {
    const request: CertificateRequestMessage = { csr: csrPem, validity_duration: validitySeconds, metadata: this.metadata }
    const response = await this.unary<CertificateResponseMessage>('certificates', 'CreateCertificate', request)
    return response.cert_chain
  }

  async getTrustBundle (): Promise<{ trustDomain: string, roots: string[] }> {
    const response = await this.unary<TrustBundleResponseMessage>('bundles', 'GetTrustBundle', {})
    return { trustDomain: response.trust_domain, roots: response.roots }
  }

  close (): void {
    this.closed = true
    this.drop(this.clients)
  }

  /** The channel (one for both services: same target, credentials and options), made on first use. */
  private open (): Clients {
    if (this.clients !== null) return this.clients
    if (this.closed) throw ferryError('FERRY_ERR_CA_UNAVAILABLE', `CA client for ${this.opts.address} is closed`)
    const { CertificateClient, TrustBundleClient } = caProtos()
    const creds = controllerCredentials(this.opts.caRootsPem, this.opts.token)
    const backoff = this.opts.reconnectBackoffMs ?? CA_CLIENT_DEFAULTS.reconnectBackoffMs
    const channelOptions: grpc.ChannelOptions = {
      'grpc.initial_reconnect_backoff_ms': backoff.initial,
      'grpc.max_reconnect_backoff_ms': backoff.max,
      ...(this.opts.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': this.opts.serverName, 'grpc.default_authority': this.opts.serverName })
    }
    const certificates = new CertificateClient(this.opts.address, creds, channelOptions)
    const bundles = new TrustBundleClient(this.opts.address, creds, { ...channelOptions, channelOverride: certificates.getChannel() })
    this.clients = { certificates, bundles }
    return this.clients
  }

  private drop (clients: Clients | null): void {
    if (clients === null) return
    if (this.clients === clients) this.clients = null
    clients.certificates.close()
  }

  private async unary<T> (service: keyof Clients, method: string, request: object): Promise<T> {
    const clients = this.open()
    const client = clients[service]
    return await new Promise<T>((resolve, reject) => {
      const fn = (client as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: grpc.requestCallback<T>) => void>)[method]
      fn.call(client, request, { deadline: Date.now() + this.timeoutMs }, (err, value) => {
        if (err === null) { resolve(value as T); return }
        if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) this.drop(clients)
        reject(this.toFerryError(method, err))
      })
    })
  }

  private toFerryError (method: string, err: grpc.ServiceError): FerryError {
    const status = grpc.status[err.code] ?? String(err.code)
    const code = REFUSALS.has(err.code) ? 'FERRY_ERR_CA_REFUSED' : 'FERRY_ERR_CA_UNAVAILABLE'
    return ferryError(code, `${method} at ${this.opts.address}: ${status}: ${err.details}`, { cause: err })
  }
}

/** A token source that re-reads a file per call (a projected token, or the lab's token file). */
export function tokenFromFile (path: string): () => Promise<string> {
  return async () => (await readFile(path, 'utf8')).trim()
}

/**
 * How an agent calls the controller (the CA, the configuration stream): TLS to a server
 * chaining to `caRootsPem`, and the node's bearer token, asked of `token` for every call
 * (projected tokens rotate).
 */
export function controllerCredentials (caRootsPem: string, token: () => string | Promise<string>): grpc.ChannelCredentials {
  const callCreds = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    Promise.resolve().then(token).then((t) => {
      const md = new grpc.Metadata()
      md.set('authorization', `Bearer ${t.trim()}`)
      callback(null, md)
    }, (err: Error) => { callback(err) })
  })
  return grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(Buffer.from(caRootsPem)), callCreds)
}
