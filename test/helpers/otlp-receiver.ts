import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import * as protobuf from 'protobufjs'
import { waitFor } from './wait'

// An OTLP trace receiver for tests, built from OpenTelemetry's published protocol
// definitions (test/fixtures/otlp-proto/, copied from open-telemetry/opentelemetry-proto)
// and nothing of Ferry's: gRPC (the TraceService, served by @grpc/grpc-js from the
// .proto via @grpc/proto-loader) and HTTP/protobuf (POST /v1/traces, the body decoded
// by protobufjs from the same .proto). It keeps every span it received, flattened.
// `block()` makes it stop answering (requests hang), as a stuck collector would.

export const OTLP_PROTO_DIR = join(__dirname, '..', 'fixtures', 'otlp-proto')
const SERVICE_PROTO = 'opentelemetry/proto/collector/trace/v1/trace_service.proto'

/** OTLP's Span.SpanKind. */
export const OTLP_KIND = Object.freeze({ INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 })

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** null for a root span. */
  readonly parentSpanId: string | null
  readonly traceState: string
  readonly name: string
  readonly kind: number
  readonly startTimeUnixNano: bigint
  readonly endTimeUnixNano: bigint
  readonly attributes: Readonly<Record<string, unknown>>
  readonly statusCode: number
  /** The resource the span was sent under. */
  readonly resource: Readonly<Record<string, unknown>>
  readonly scope: string
  readonly protocol: 'grpc' | 'http/protobuf'
}

export interface OtlpReceiver {
  /** What an exporter is given: http://host:port for gRPC, http://host:port/v1/traces for HTTP/protobuf. */
  readonly url: string
  readonly port: number
  readonly spans: ReceivedSpan[]
  /** Export requests answered. */
  requests: number
  /** Resolves once `pred` holds over the spans received so far (throws after timeoutMs). */
  waitForSpans (pred: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>
  /** From now on, requests are read but never answered. */
  block (): void
  close (): Promise<void>
}

export interface OtlpReceiverOptions {
  readonly protocol: 'grpc' | 'http/protobuf'
  /** Default 127.0.0.1, port 0. */
  readonly host?: string
  readonly port?: number
  /** A listening socket made elsewhere (e.g. in a lab's network namespace); host and port are then only for `url`. */
  readonly fd?: number
}

let root: protobuf.Root | null = null
function protoRoot (): protobuf.Root {
  if (root !== null) return root
  const r = new protobuf.Root()
  r.resolvePath = (_origin, target) => join(OTLP_PROTO_DIR, target)
  r.loadSync(SERVICE_PROTO, { keepCase: false })
  root = r
  return r
}

export async function startOtlpReceiver (o: OtlpReceiverOptions): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  let blocked = false
  const held = new Set<() => void>()
  const state = { requests: 0 }
  const take = (request: any, protocol: ReceivedSpan['protocol']): void => {
    state.requests++
    for (const rs of request.resourceSpans ?? []) {
      const resource = attributesOf(rs.resource?.attributes)
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) spans.push(flatten(s, resource, ss.scope?.name ?? '', protocol))
      }
    }
  }
  let server: Server
  let closeExtra: () => void = () => {}
  if (o.protocol === 'grpc') {
    const def = protoLoader.loadSync(SERVICE_PROTO, { includeDirs: [OTLP_PROTO_DIR], keepCase: false, longs: String, enums: Number, bytes: Buffer, defaults: false, oneofs: true })
    const pkg = grpc.loadPackageDefinition(def) as any
    const g = new grpc.Server()
    g.addService(pkg.opentelemetry.proto.collector.trace.v1.TraceService.service, {
      Export: (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
        if (blocked) { held.add(() => { callback(null, {}) }); return }
        take(call.request, 'grpc')
        callback(null, {})
      }
    })
    const injector = g.createConnectionInjector(grpc.ServerCredentials.createInsecure())
    server = createNetServer((socket: Socket) => { injector.injectConnection(socket) })
    closeExtra = () => { injector.destroy(); g.forceShutdown() }
  } else {
    const type = protoRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
    const reply = protoRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse')
    const http = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return }
        if (blocked) { held.add(() => { res.destroy() }); return }
        let body = Buffer.concat(chunks)
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
        if (!String(req.headers['content-type']).startsWith('application/x-protobuf')) { res.writeHead(415).end(); return }
        let msg: any
        try {
          msg = type.toObject(type.decode(body), { longs: String, enums: Number, bytes: Buffer as any, defaults: false, oneofs: true })
        } catch (err) {
          res.writeHead(400).end((err as Error).message)
          return
        }
        take(msg, 'http/protobuf')
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(reply.encode(reply.create({})).finish()))
      })
    })
    server = http
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    if (o.fd !== undefined) server.listen({ fd: o.fd }, resolve)
    else server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve)
  })
  const port = o.fd !== undefined && o.port !== undefined && o.port !== 0 ? o.port : (server.address() as AddressInfo).port
  const host = o.host ?? '127.0.0.1'
  const hostPart = host.includes(':') ? `[${host}]` : host
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  return {
    url: o.protocol === 'grpc' ? `http://${hostPart}:${port}` : `http://${hostPart}:${port}/v1/traces`,
    port,
    spans,
    get requests () { return state.requests },
    set requests (n: number) { state.requests = n },
    async waitForSpans (pred, timeoutMs = 15_000) {
      await waitFor(() => pred(spans), { timeoutMs, what: 'OTLP spans' })
      return spans
    },
    block () { blocked = true },
    async close () {
      held.clear()
      closeExtra()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

function hex (b: unknown): string {
  if (b === undefined || b === null) return ''
  return Buffer.from(b as Uint8Array).toString('hex')
}

function flatten (s: any, resource: Record<string, unknown>, scope: string, protocol: ReceivedSpan['protocol']): ReceivedSpan {
  const parent = hex(s.parentSpanId)
  return {
    traceId: hex(s.traceId),
    spanId: hex(s.spanId),
    parentSpanId: parent === '' ? null : parent,
    traceState: s.traceState ?? '',
    name: s.name ?? '',
    kind: Number(s.kind ?? 0),
    startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
    endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
    attributes: attributesOf(s.attributes),
    statusCode: Number(s.status?.code ?? 0),
    resource,
    scope,
    protocol
  }
}

/** OTLP KeyValue list → plain object (ints as numbers: test values are small). */
function attributesOf (list: any[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const kv of list ?? []) out[kv.key] = valueOf(kv.value)
  return out
}

function valueOf (v: any): unknown {
  if (v === undefined || v === null) return null
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.boolValue !== undefined) return v.boolValue
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf)
  if (v.bytesValue !== undefined) return hex(v.bytesValue)
  return null
}
