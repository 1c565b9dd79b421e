import type { Logger } from './logger'
import { type ConnectionRecord, formatAddr } from './connection-record'

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

export function createAccessLog (log: Logger): AccessLog {
  return (r) => {
    if (!log.isLevelEnabled('info')) return
    const src = r.source
    const line: Record<string, unknown> = {
      direction: r.direction,
      source: src.pod === null
        ? { ip: src.ip, port: src.port }
        : { pod: src.pod, namespace: src.namespace, workload: src.workload, ip: src.ip, port: src.port }
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
