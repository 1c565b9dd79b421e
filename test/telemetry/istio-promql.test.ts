import t from 'tap'
import { createServer } from 'node:http'
import { AggregatorRegistry, Registry } from 'prom-client'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import { IstioLabeler } from '../../src/telemetry/istio-labels'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { IstioRequestTelemetry } from '../../src/telemetry/request-telemetry'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'
import { startPrometheus } from '../helpers/prometheus'
import { conn, PODS, request } from './request-records'

// Istio's Grafana service dashboard and Kiali's graph, evaluated unchanged (but for their
// variables) by a real Prometheus scraping Ferry's registries over HTTP, after a known
// load. Two registries stand for two workers, summed as the agent's /metrics sums them.
//
// Expressions copied from:
//   Grafana: istio/istio manifests/addons/dashboards/istio-service-dashboard.json, panels
//     "Server Request Volume", "Server Success Rate (non-5xx responses)", "Client Request
//     Duration" (P50/P90/P99), "Incoming Requests By Source And Response Code"; variables
//     $qrep=destination, $service=cart.shop.svc.cluster.local, $srcwl/$srcns=.*,
//     $__rate_interval=1m.
//   Kiali: kiali/kiali graph/telemetry/istio/istio.go (buildNamespaceTrafficMap, query 1:
//     incoming, destination-reported), with namespace=shop and a 60 s duration.

const SERVICE = 'cart.shop.svc.cluster.local'
const GROUP_BY = 'source_cluster,source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,request_protocol,response_code,grpc_response_status,response_flags'
const TCP_GROUP_BY = 'app,source_cluster,source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,response_flags'
const DASHBOARD = {
  serverVolume: `round(sum(irate(istio_requests_total{reporter="destination",destination_service="${SERVICE}"}[1m])), 0.001)`,
  serverSuccess: `sum(irate(istio_requests_total{reporter="destination",destination_service="${SERVICE}",response_code!~"5.*"}[1m])) / (sum(irate(istio_requests_total{reporter="destination",destination_service="${SERVICE}"}[1m])) or on () vector(1))`,
  duration: (q: string) => `(histogram_quantile(${q}, sum(irate(istio_request_duration_milliseconds_bucket{reporter=~"destination",destination_service="${SERVICE}"}[1m])) by (le)) / 1000) or histogram_quantile(${q}, sum(irate(istio_request_duration_seconds_bucket{reporter=~"destination",destination_service="${SERVICE}"}[1m])) by (le))`,
  bySourceAndCode: `round(sum(irate(istio_requests_total{connection_security_policy="mutual_tls",destination_service="${SERVICE}",reporter=~"destination",source_workload=~".*",source_workload_namespace=~".*"}[1m])) by (source_workload, source_workload_namespace, response_code), 0.001)`
}
const SUCCESS_RATE = 'sum(rate(istio_requests_total{reporter="destination",response_code!~"5.*"}[1m]))/sum(rate(istio_requests_total{reporter="destination"}[1m]))'
const RATE_BY_CODE = 'sum(rate(istio_requests_total{reporter="destination"}[1m])) by (response_code)'
const KIALI = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop"} [60s])) by (${GROUP_BY}) > 0`
const KIALI_TCP = `sum(rate(istio_tcp_sent_bytes_total{reporter="destination",destination_workload_namespace="shop"} [60s])) by (${TCP_GROUP_BY}) > 0`

t.test('Istio\'s dashboard and Kiali\'s graph queries over Ferry\'s metrics, by a real Prometheus', async (t) => {
  const labeler = new IstioLabeler({ pods: PODS })
  const workers = [new Registry(), new Registry()].map((registry) => ({
    registry,
    requests: new IstioRequestTelemetry({ registry, labeler, log: null }),
    tcp: new ProxyMetrics(registry, labeler)
  }))
  let next = 0
  const send = (r: HttpRequestRecord, n: number): void => {
    for (let i = 0; i < n; i++) workers[next++ % 2]!.requests.requestEnded(r)
  }
  const inbound = conn({ direction: 'inbound' })
  const dest = (over: Partial<HttpRequestRecord>): HttpRequestRecord => request({ reporter: 'destination', conn: inbound, ...over })
  const ok = dest({ durationMs: 3 })
  const failed = dest({ responseCode: 503, durationMs: 700 })
  const grpcOk = dest({ protocol: 'grpc', httpVersion: '2', grpcStatus: 0, durationMs: 3 })
  const grpcUnavailable = dest({ protocol: 'grpc', httpVersion: '2', grpcStatus: 14, durationMs: 3 })
  const client = request({ durationMs: 3 })

  const server = createServer((req, res) => {
    void (async () => {
      const summed = AggregatorRegistry.aggregate(await Promise.all(workers.map(async (w) => await w.registry.getMetricsAsJSON())))
      res.setHeader('content-type', summed.contentType)
      res.end(await summed.metrics())
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })

  // Every series exists before the first scrape, so every series' rate() has the same
  // samples and Prometheus extrapolates them alike: ratios and quantiles are exact. (Each
  // starts well above 0: rate() extrapolates a counter back no further than to zero,
  // which would otherwise cut small series' extrapolation differently.)
  for (const r of [ok, failed, grpcOk, grpcUnavailable, client]) send(r, 200)
  let sent = 100
  const tcp: ConnectionRecord = conn({ direction: 'inbound', bytesSent: () => sent, bytesReceived: () => sent / 10 })
  workers[0]!.tcp.connectionAccepted(tcp)
  workers[0]!.tcp.connectionOpened(tcp)

  const prom = await startPrometheus([{ address: `127.0.0.1:${(server.address() as { port: number }).port}` }])
  t.teardown(async () => { await prom.stop() })
  await prom.scrapes(2)

  // The known load, all between two scrapes (the calls are synchronous).
  send(ok, 90)
  send(failed, 10)
  send(grpcOk, 20)
  send(grpcUnavailable, 5)
  send(client, 100)
  sent = 10_000
  const at = await prom.scrapes(1) + 0.5
  const close = (a: number, b: number, what: string): void => { t.ok(Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} (want ${b})`) }
  const one = async (q: string): Promise<number> => {
    const r = await prom.query(q, at)
    t.equal(r.length, 1, `one sample: ${q}`)
    return r[0]?.value ?? NaN
  }

  close(await one(SUCCESS_RATE), 115 / 125, 'success rate: non-5xx of the destination-reported requests (gRPC errors answer 200)')
  const byCode = Object.fromEntries((await prom.query(RATE_BY_CODE, at)).map((s) => [s.metric.response_code, s.value]))
  t.same(Object.keys(byCode).sort(), ['200', '503'])
  close(byCode['200']! / byCode['503']!, 115 / 10, 'request rate by response code')

  const volume = await one(DASHBOARD.serverVolume)
  t.ok(volume > 125 / 1.5 && volume < 125 / 0.5, `server request volume: 125 requests in one scrape interval (${volume}/s)`)
  close(await one(DASHBOARD.serverSuccess), 0.92, 'dashboard: server success rate')
  const p = async (q: string): Promise<number> => await one(DASHBOARD.duration(q))
  // 115 requests in (1, 5] ms, 10 in (500, 1000] ms: histogram_quantile interpolates in the bucket.
  close(await p('0.50'), (1 + 4 * 62.5 / 115) / 1000, 'p50 (seconds)')
  close(await p('0.90'), (1 + 4 * 112.5 / 115) / 1000, 'p90')
  close(await p('0.99'), (500 + 500 * 8.75 / 10) / 1000, 'p99')
  const bySource = await prom.query(DASHBOARD.bySourceAndCode, at)
  t.same(bySource.map((s) => `${s.metric.source_workload}.${s.metric.source_workload_namespace}:${s.metric.response_code}`).sort(), ['web.shop:200', 'web.shop:503'], 'incoming requests by source and response code (mTLS)')

  const graph = await prom.query(KIALI, at)
  const edges = graph.map((s) => `${s.metric.request_protocol} ${s.metric.response_code} ${s.metric.grpc_response_status ?? '-'}`).sort()
  t.same(edges, ['grpc 200 0', 'grpc 200 14', 'http 200 -', 'http 503 -'], 'Kiali: one series per protocol, code and gRPC status')
  for (const s of graph) {
    t.match(s.metric, {
      source_cluster: 'Kubernetes',
      source_workload_namespace: 'shop',
      source_workload: 'web',
      source_canonical_service: 'web',
      source_canonical_revision: 'v1',
      destination_cluster: 'Kubernetes',
      destination_service_namespace: 'shop',
      destination_service: SERVICE,
      destination_service_name: 'cart',
      destination_workload_namespace: 'shop',
      destination_workload: 'cart',
      destination_canonical_service: 'cart',
      destination_canonical_revision: '2.0',
      response_flags: '-'
    })
  }
  const tcpEdges = await prom.query(KIALI_TCP, at)
  t.equal(tcpEdges.length, 1, 'Kiali TCP: the live connection\'s bytes, before it closes')
  t.match(tcpEdges[0]?.metric, { source_workload: 'web', destination_workload: 'cart', destination_service: SERVICE, response_flags: '-' })
})
