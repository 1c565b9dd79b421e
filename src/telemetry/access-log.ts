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
//   bytes_received       bytes from the source (request direction)
//   bytes_sent           bytes to the source (response direction)
//   duration_ms          accept to close
//   result               ok | connect_error | connect_timeout | reset | no_endpoints | no_original_dst
//   error_code           errno-style code (ECONNREFUSED, ETIMEDOUT, ECONNRESET, ...) when there was one

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
    line.bytes_received = r.bytesReceived()
    line.bytes_sent = r.bytesSent()
    line.duration_ms = Math.round(r.durationMs() * 1000) / 1000
    line.result = r.result
    if (r.errorCode !== null) line.error_code = r.errorCode
    log.info(line, 'access')
  }
}
