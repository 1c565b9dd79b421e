import { SpanStatusCode, type Attributes, type SpanStatus } from '@opentelemetry/api'
import {
  ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_METHOD_ORIGINAL, ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT, ATTR_NETWORK_PROTOCOL_NAME, ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL, ATTR_URL_PATH, ATTR_URL_SCHEME, ATTR_USER_AGENT_ORIGINAL
} from '@opentelemetry/semantic-conventions'
import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from '@opentelemetry/semantic-conventions/incubating'
import type { HeaderBag, RequestSpanEnd, RequestSpanStart } from '../request-tracing'
import { headerValue } from './trace-context'

// A request span's name and attributes: OpenTelemetry's HTTP semantic conventions
// (https://opentelemetry.io/docs/specs/semconv/http/http-spans/), its RPC conventions for
// gRPC, and Ferry's own under `ferry.` (the mesh's view: workloads, namespaces and
// SPIFFE principals of both ends, the Service, Envoy-style response flags). The query
// string is left out (url.path only): it often carries secrets, and the mesh cannot
// know which parts are safe. docs/tracing.md lists every attribute.

export const FERRY_ATTR = Object.freeze({
  sourceWorkload: 'ferry.source.workload',
  sourceNamespace: 'ferry.source.namespace',
  sourcePrincipal: 'ferry.source.principal',
  destinationWorkload: 'ferry.destination.workload',
  destinationNamespace: 'ferry.destination.namespace',
  destinationPrincipal: 'ferry.destination.principal',
  destinationService: 'ferry.destination.service',
  requestId: 'ferry.request_id',
  responseFlags: 'ferry.response_flags',
  node: 'ferry.node'
})

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY'])
/** gRPC codes a server span marks as errors (the RPC conventions' list); a client span marks every non-OK code. */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15])

/** `{method}` for HTTP (the route is not known to a proxy), `{service}/{method}` for gRPC. */
export function spanName (a: RequestSpanStart): string {
  if (a.protocol === 'grpc') {
    const rpc = grpcMethod(pathOnly(a.path))
    if (rpc !== null) return `${rpc.service}/${rpc.method}`
  }
  return KNOWN_METHODS.has(a.method) ? a.method : 'HTTP'
}

export function startAttributes (a: RequestSpanStart, headers: HeaderBag, requestId: string, node: string): Attributes {
  const path = pathOnly(a.path)
  const server = hostPort(a.authority)
  const attrs: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: KNOWN_METHODS.has(a.method) ? a.method : '_OTHER',
    [ATTR_URL_PATH]: path,
    [ATTR_URL_SCHEME]: a.scheme,
    [ATTR_NETWORK_PROTOCOL_NAME]: 'http',
    [ATTR_NETWORK_PROTOCOL_VERSION]: a.httpVersion,
    [FERRY_ATTR.requestId]: requestId,
    [FERRY_ATTR.node]: node
  }
  if (!KNOWN_METHODS.has(a.method)) attrs[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = a.method
  if (server !== null) {
    attrs[ATTR_SERVER_ADDRESS] = server.host
    attrs[ATTR_SERVER_PORT] = server.port
  }
  if (a.kind === 'client') attrs[ATTR_URL_FULL] = `${a.scheme}://${a.authority}${path}`
  const ua = headerValue(headers, 'user-agent')
  if (ua !== undefined) attrs[ATTR_USER_AGENT_ORIGINAL] = ua
  if (a.protocol === 'grpc') {
    attrs[ATTR_RPC_SYSTEM] = 'grpc'
    const rpc = grpcMethod(path)
    if (rpc !== null) {
      attrs[ATTR_RPC_SERVICE] = rpc.service
      attrs[ATTR_RPC_METHOD] = rpc.method
    }
  }
  set(attrs, FERRY_ATTR.sourceWorkload, a.sourceWorkload)
  set(attrs, FERRY_ATTR.sourceNamespace, a.sourceNamespace)
  set(attrs, FERRY_ATTR.sourcePrincipal, a.sourcePrincipal)
  set(attrs, FERRY_ATTR.destinationWorkload, a.destinationWorkload)
  set(attrs, FERRY_ATTR.destinationNamespace, a.destinationNamespace)
  set(attrs, FERRY_ATTR.destinationPrincipal, a.destinationPrincipal)
  set(attrs, FERRY_ATTR.destinationService, a.destinationService)
  return attrs
}

/**
 * The response's attributes and the span's status. HTTP: a client span is an error
 * from 400 up, a server span from 500 up; no response at all (code 0) is an error on
 * both, typed by the response flags. gRPC: per the RPC conventions.
 */
export function endAttributes (kind: 'client' | 'server', r: RequestSpanEnd): { attributes: Attributes, status: SpanStatus } {
  const attributes: Attributes = { [FERRY_ATTR.responseFlags]: r.responseFlags === '' ? '-' : r.responseFlags }
  if (r.responseCode > 0) attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = r.responseCode
  if (r.grpcStatus !== null) attributes[ATTR_RPC_GRPC_STATUS_CODE] = r.grpcStatus
  const peer = r.upstream === null ? null : hostPort(r.upstream)
  if (peer !== null) {
    attributes[ATTR_NETWORK_PEER_ADDRESS] = peer.host
    attributes[ATTR_NETWORK_PEER_PORT] = peer.port
  }
  let error: string | null = null
  if (r.responseCode === 0) error = r.responseFlags === '' || r.responseFlags === '-' ? '_OTHER' : r.responseFlags
  else if (r.grpcStatus !== null) {
    if (r.grpcStatus !== 0 && (kind === 'client' || GRPC_SERVER_ERRORS.has(r.grpcStatus))) error = String(r.grpcStatus)
  } else if (r.responseCode >= (kind === 'client' ? 400 : 500)) error = String(r.responseCode)
  if (error === null) return { attributes, status: { code: SpanStatusCode.UNSET } }
  attributes[ATTR_ERROR_TYPE] = error
  return { attributes, status: { code: SpanStatusCode.ERROR } }
}

function set (attrs: Attributes, name: string, value: string | null): void {
  if (value !== null && value !== '') attrs[name] = value
}

function pathOnly (target: string): string {
  const q = target.indexOf('?')
  return q === -1 ? target : target.slice(0, q)
}

/** "/package.Service/Method" → its parts; null for any other shape. */
function grpcMethod (path: string): { service: string, method: string } | null {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path)
  return m === null ? null : { service: m[1] as string, method: m[2] as string }
}

/** "host", "host:port", "[v6]:port" → host without brackets and port (80 when absent). */
export function hostPort (authority: string): { host: string, port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d{1,5}))?$/.exec(authority)
  if (m === null) return null
  return { host: (m[1] ?? m[2]) as string, port: m[3] === undefined ? 80 : Number(m[3]) }
}
