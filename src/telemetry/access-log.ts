import { infoLineWriter, type Logger } from './logger'
import { type ConnectionRecord, formatAddr } from './connection-record'
import type { HttpRequestRecord } from './request-record'

// One JSON line per connection, written when it closes: `msg: "access"`.
// Field names are a contract (docs, e2e tests and dashboards read them):
//   direction            "outbound" | "inbound"
//   source               { pod, namespace, workload, ip, port } (pod fields omitted when unknown)
//   original_destination "ip:port" ([v6]:port) the application connected to
//   destination_service  "name.namespace" when the original destination was a Service VIP
//   endpoint             "ip:port" the proxy connected to
//   destination          { pod, namespace, workload } when the endpoint is a known pod
//   source_principal     SPIFFE ID of the source, when known: verified by mTLS, or a pod of this node
//   destination_principal SPIFFE ID of the destination, when known: verified by mTLS, or a pod of this node
//   mtls                 true when the connection crossed the network in the mutual-TLS tunnel
//   bytes_received       bytes from the source (request direction)
//   bytes_sent           bytes to the source (response direction)
//   duration_ms          accept to close
//   result               ok | connect_error | connect_timeout | reset | no_endpoints | no_original_dst | denied_plaintext | denied
//   authz                the authorization decision when a policy applied: { allowed, basis, policy, rule, dryRun… }
//   error_code           errno-style code (ECONNREFUSED, ETIMEDOUT, ECONNRESET, ...) or a tunnel error code (FERRY_ERR_TUNNEL_CONNECT, _PEER, _REFUSED, _BUSY), when there was one
//   error_reason         what went wrong, finer than the code (a tunnel's "wrong-identity", "status 503", ...)

export type AccessLog = (r: ConnectionRecord) => void

function sourceField (src: ConnectionRecord['source']): Record<string, unknown> {
  return src.pod === null
    ? { ip: src.ip, port: src.port }
    : { pod: src.pod, namespace: src.namespace, workload: src.workload, ip: src.ip, port: src.port }
}

export function createAccessLog (log: Logger): AccessLog {
  return (r) => {
    if (!log.isLevelEnabled('info')) return
    const line: Record<string, unknown> = {
      direction: r.direction,
      source: sourceField(r.source)
    }
    if (r.originalDst !== null) line.original_destination = formatAddr(r.originalDst)
    if (r.service !== null) line.destination_service = r.service
    if (r.endpoint !== null) line.endpoint = formatAddr(r.endpoint)
    if (r.destination !== null) line.destination = { pod: r.destination.pod, namespace: r.destination.namespace, workload: r.destination.workload }
    if (r.sourcePrincipal !== null) line.source_principal = r.sourcePrincipal
    if (r.destinationPrincipal !== null) line.destination_principal = r.destinationPrincipal
    line.mtls = r.mtls
    line.bytes_received = r.bytesReceived()
    line.bytes_sent = r.bytesSent()
    line.duration_ms = Math.round(r.durationMs() * 1000) / 1000
    if (r.authz != null) line.authz = r.authz
    line.result = r.result
    if (r.errorCode !== null) line.error_code = r.errorCode
    if (r.errorReason !== null) line.error_reason = r.errorReason
    log.info(line, 'access')
  }
}

// One JSON line per proxied HTTP request (L7), written when the request ends, beside the
// connection lines and through the same output: `msg: "request"`. Field names are a
// contract as above, with the connection line's names where the meaning is the same:
//   reporter             "source" (the client side's proxy) | "destination" (the server side's)
//   direction            the connection's: "outbound" at the source, "inbound" at the destination
//   method, authority, path  as forwarded (the path normalized at the destination)
//   protocol             "HTTP/1.1" | "HTTP/2" (downstream)
//   request_protocol     "http" | "grpc" (Istio's label)
//   status               the response status sent downstream; 0 when none was sent
//   grpc_status          grpc-status of the response, when gRPC and present
//   response_flags       Envoy-style flags ("-" when none: UF, UC, UT, DC, NR, RBAC, ...)
//   duration_ms          request start to response end
//   bytes_received       request body bytes from the source
//   bytes_sent           response body bytes to the source
//   endpoint             "ip:port" the request was forwarded to, when one was chosen
//   trace_id, request_id when known
//   source, destination_service, source_principal, mtls   the connection's, as in its line
//   destination, destination_principal   the pod the request went to (the connection's
//                        destination, unless the request was balanced to another endpoint)
//   authz                the authorization decision when a policy decided this request
//   route_name           the route rule that handled it, when one did
//   attempts             upstream attempts under a route's plan (retries included), when it had one
/** The pod a request went to when it is not the connection's destination. */
export interface RequestDestination {
  readonly pod: { readonly name: string, readonly namespace: string, readonly workload: string }
  readonly principal: string
}

export type RequestAccessLog = (r: HttpRequestRecord, destination: RequestDestination | null) => void

export function createRequestAccessLog (log: Logger): RequestAccessLog {
  const write = infoLineWriter(log, 'request')
  if (write !== null) {
    return (r, destination) => {
      if (log.isLevelEnabled('info')) write(requestLineFields(r, destination))
    }
  }
  return (r, destination) => {
    if (!log.isLevelEnabled('info')) return
    const c = r.conn
    const line: Record<string, unknown> = {
      reporter: r.reporter,
      direction: c.direction,
      method: r.method,
      authority: r.authority,
      path: r.path,
      protocol: r.httpVersion === '2' ? 'HTTP/2' : 'HTTP/1.1',
      request_protocol: r.protocol,
      status: r.responseCode
    }
    if (r.grpcStatus !== null) line.grpc_status = r.grpcStatus
    line.response_flags = r.responseFlags
    line.duration_ms = Math.round(r.durationMs * 1000) / 1000
    line.bytes_received = r.requestBytes
    line.bytes_sent = r.responseBytes
    if (r.upstream !== null) line.endpoint = formatAddr(r.upstream)
    if (r.traceId !== null) line.trace_id = r.traceId
    if (r.requestId !== null) line.request_id = r.requestId
    line.source = sourceField(c.source)
    if (c.service !== null) line.destination_service = c.service
    if (c.sourcePrincipal !== null) line.source_principal = c.sourcePrincipal
    if (destination !== null) {
      line.destination = { pod: destination.pod.name, namespace: destination.pod.namespace, workload: destination.pod.workload }
      if (destination.principal !== 'unknown') line.destination_principal = destination.principal
    } else {
      if (c.destination !== null) line.destination = { pod: c.destination.pod, namespace: c.destination.namespace, workload: c.destination.workload }
      if (c.destinationPrincipal !== null) line.destination_principal = c.destinationPrincipal
    }
    line.mtls = c.mtls
    if (r.authz != null) line.authz = r.authz
    if (r.routeName != null) line.route_name = r.routeName
    if (r.attempts !== undefined && r.attempts > 0) line.attempts = r.attempts
    log.info(line, 'request')
  }
}

const q = JSON.stringify
function num (v: number): string { return Number.isFinite(v) ? String(v) : 'null' }

/**
 * The request line's fields serialized by hand (logger.ts infoLineWriter): the same
 * fields, values and order as the object the pino path above logs.
 */
function requestLineFields (r: HttpRequestRecord, destination: RequestDestination | null): string {
  const c = r.conn
  let s = `"reporter":${q(r.reporter)},"direction":${q(c.direction)},"method":${q(r.method)},"authority":${q(r.authority)},"path":${q(r.path)},` +
    `"protocol":${r.httpVersion === '2' ? '"HTTP/2"' : '"HTTP/1.1"'},"request_protocol":${q(r.protocol)},"status":${num(r.responseCode)}`
  if (r.grpcStatus !== null) s += `,"grpc_status":${num(r.grpcStatus)}`
  s += `,"response_flags":${q(r.responseFlags)},"duration_ms":${num(Math.round(r.durationMs * 1000) / 1000)},"bytes_received":${num(r.requestBytes)},"bytes_sent":${num(r.responseBytes)}`
  if (r.upstream !== null) s += `,"endpoint":${q(formatAddr(r.upstream))}`
  if (r.traceId !== null) s += `,"trace_id":${q(r.traceId)}`
  if (r.requestId !== null) s += `,"request_id":${q(r.requestId)}`
  s += `,"source":${q(sourceField(c.source))}`
  if (c.service !== null) s += `,"destination_service":${q(c.service)}`
  if (c.sourcePrincipal !== null) s += `,"source_principal":${q(c.sourcePrincipal)}`
  if (destination !== null) {
    s += `,"destination":${q({ pod: destination.pod.name, namespace: destination.pod.namespace, workload: destination.pod.workload })}`
    if (destination.principal !== 'unknown') s += `,"destination_principal":${q(destination.principal)}`
  } else {
    if (c.destination !== null) s += `,"destination":${q({ pod: c.destination.pod, namespace: c.destination.namespace, workload: c.destination.workload })}`
    if (c.destinationPrincipal !== null) s += `,"destination_principal":${q(c.destinationPrincipal)}`
  }
  s += `,"mtls":${c.mtls ? 'true' : 'false'}`
  if (r.authz != null) s += `,"authz":${q(r.authz)}`
  if (r.routeName != null) s += `,"route_name":${q(r.routeName)}`
  if (r.attempts !== undefined && r.attempts > 0) s += `,"attempts":${num(r.attempts)}`
  return s
}
