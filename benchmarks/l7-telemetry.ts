import { Registry } from 'prom-client'
import { IstioLabeler, type PodLike } from '../src/telemetry/istio-labels'
import { createLogger } from '../src/telemetry/logger'
import type { ConnectionRecord } from '../src/telemetry/connection-record'
import type { HttpRequestRecord } from '../src/telemetry/request-record'
import { IstioRequestTelemetry } from '../src/telemetry/request-telemetry'

// The per-request telemetry alone, in a loop: what IstioRequestTelemetry.requestEnded
// (Istio's request metrics and the access line, to /dev/null) costs per request, with
// the labels of a meshed pod calling a Service. `npx ts-node-transpile-only
// benchmarks/l7-telemetry.ts [N]`: prints µs per request for metrics and line, metrics only.

const CLIENT: PodLike = { name: 'client-1', namespace: 'bench', workload: 'client', labels: { app: 'client', version: 'v1' } }
const SERVER: PodLike = { name: 'server-l7-1', namespace: 'bench', workload: 'server-l7', labels: { app: 'server-l7', version: 'v1' } }
const byIP = new Map<string, PodLike>([['10.244.1.2', CLIENT], ['10.244.2.3', SERVER]])
const labeler = new IstioLabeler({ pods: { podByName: (ns, n) => [...byIP.values()].find((p) => p.namespace === ns && p.name === n), podByIP: (ip) => byIP.get(ip) } })

const conn: ConnectionRecord = {
  direction: 'outbound',
  source: { pod: CLIENT.name, namespace: 'bench', workload: 'client', ip: '10.244.1.2', port: 40000 },
  originalDst: { address: '10.96.0.14', port: 8080, family: 4 },
  service: 'server-l7.bench',
  endpoint: { address: '10.244.2.3', port: 8080, family: 4 },
  destination: { pod: SERVER.name, namespace: 'bench', workload: 'server-l7' },
  sourcePrincipal: 'spiffe://cluster.local/ns/bench/sa/client',
  destinationPrincipal: 'spiffe://cluster.local/ns/bench/sa/server',
  mtls: true,
  result: null,
  errorCode: null,
  errorReason: null,
  bytesReceived: () => 0,
  bytesSent: () => 0,
  durationMs: () => 1,
  telemetry: null
}

function record (i: number): HttpRequestRecord {
  return {
    reporter: 'source', conn, protocol: 'http', httpVersion: '1.1', method: 'GET', authority: '10.96.0.14:8080', path: '/1k',
    responseCode: 200, grpcStatus: null, responseFlags: '-', durationMs: 1.234 + (i % 7), requestBytes: 0, responseBytes: 1024,
    upstream: { address: '10.244.2.3', port: 8080, family: 4 }, traceId: null, requestId: '6f1c1ef4-6f0e-4a59-9a5e-0c0a4f9a7b1d', authz: null
  }
}

function run (label: string, t: IstioRequestTelemetry, n: number): void {
  for (let i = 0; i < 20_000; i++) t.requestEnded(record(i))
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) t.requestEnded(record(i))
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  process.stdout.write(`${label.padEnd(22)} ${(ms * 1000 / n).toFixed(2)} µs/request wall, ${((c.user + c.system) / n).toFixed(2)} µs CPU\n`)
}

const n = Number(process.argv[2] ?? 200_000)
const log = createLogger({ name: 'ferry', level: 'info', destination: '/dev/null' })
run('metrics + access line', new IstioRequestTelemetry({ registry: new Registry(), labeler, log }), n)
run('metrics only', new IstioRequestTelemetry({ registry: new Registry(), labeler, log: null }), n)
run('metrics + access line', new IstioRequestTelemetry({ registry: new Registry(), labeler, log }), n)
run('metrics only', new IstioRequestTelemetry({ registry: new Registry(), labeler, log: null }), n)
