import t from 'tap'
import { join } from 'node:path'
import { ferry, ferryOk, REPO } from '../helpers/cli'
import { relayAgentAdmin, type AgentRelay } from '../helpers/agent-relay'
import { nodeLog } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'
import { type Prometheus, startPrometheus } from '../helpers/prometheus'

// Istio's metrics from a real lab, read the way Istio's Grafana dashboards and Kiali's
// graph read them: the two-node lab of the L7 test programs
// (test/fixtures/apps/l7-lab.yaml; L7 enabled on namespace l7), a known load of HTTP/1.1
// requests (Service http: pods http-a on node1, same node as the client, and http-b on
// node2) and gRPC calls (Service grpc-node on node2, some ending UNAVAILABLE), and a real
// Prometheus (Debian's) scraping both agents' /metrics. The expressions are Istio's and
// Kiali's (see test/telemetry/istio-promql.test.ts for where they are copied from).

const lab = uniqueLabName('l7met')
const MANIFEST = join(REPO, 'test/fixtures/apps/l7-lab.yaml')
const LAB_UP_MS = 240_000
const HTTP_SVC = 'http.l7.svc.cluster.local'
const GRPC_SVC = 'grpc-node.l7.svc.cluster.local'
const GROUP_BY = 'source_cluster,source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,request_protocol,response_code,grpc_response_status,response_flags'

t.setTimeout(LAB_UP_MS + 300_000)

let relays: AgentRelay[] = []
let prom: Prometheus | null = null
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, MANIFEST], { timeoutMs: LAB_UP_MS })
})
t.teardown(async () => {
  await prom?.stop()
  for (const r of relays) await r.close()
  await ferry(['lab', 'down', lab], { timeoutMs: 90_000 })
})

/** Runs a test program in the client pod (working directory: the programs' folder); its JSON lines. */
async function client (argv: string[], timeoutMs = 60_000): Promise<any[]> {
  const r = await ferry(['lab', 'exec', '--lab', lab, 'client', '-n', 'l7', '--', 'timeout', '-s', 'KILL', String(Math.ceil(timeoutMs / 1000)), ...argv], { timeoutMs: timeoutMs + 15_000 })
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  if (lines.length === 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`)
  return lines
}
const httpRequests = async (n: number): Promise<any> => (await client(['node', 'http-client.js', '--url', 'http://http:8080/', '--requests', String(n)]))[0]
const grpcCalls = async (n: number, status = 0): Promise<any[]> => await client(['node', 'grpc-client.js', '--target', 'grpc-node:50051', '--method', 'unary', '--repeat', String(n), '--status', String(status)])

t.test('a known load, counted by both agents, read with Istio\'s and Kiali\'s PromQL', async (t) => {
  // Every series once before Prometheus starts, so each has samples before the load.
  t.match(await httpRequests(1), { ok: true })
  await grpcCalls(1, 0)
  await grpcCalls(1, 14)
  relays = [await relayAgentAdmin(lab, 'node1'), await relayAgentAdmin(lab, 'node2')]
  prom = await startPrometheus(relays.map((r, i) => ({ address: r.address, labels: { node: `node${i + 1}` } })))
  await prom.scrapes(2)

  const http = await httpRequests(40)
  t.match(http, { ok: true, requests: 40, statuses: { 200: 40 } })
  t.equal(Object.keys(http.servers).length, 2, `balanced over both endpoints (${JSON.stringify(http.servers)})`)
  const ok = await grpcCalls(20, 0)
  t.ok(ok.length === 20 && ok.every((c) => c.code === 0), '20 gRPC calls OK')
  const unavailable = await grpcCalls(10, 14)
  t.ok(unavailable.length === 10 && unavailable.every((c) => c.code === 14), '10 gRPC calls UNAVAILABLE')
  await prom.scrapes(2)
  const p = prom

  const total = async (q: string): Promise<number> => (await p.query(q)).reduce((a, s) => a + s.value, 0)
  for (const reporter of ['source', 'destination']) {
    t.equal(await total(`sum(istio_requests_total{reporter="${reporter}",destination_service="${HTTP_SVC}",request_protocol="http",response_code="200"})`), 41, `${reporter}: every HTTP request, once`)
    t.equal(await total(`sum(istio_requests_total{reporter="${reporter}",destination_service="${GRPC_SVC}",request_protocol="grpc",grpc_response_status="0"})`), 21, `${reporter}: gRPC OK`)
    t.equal(await total(`sum(istio_requests_total{reporter="${reporter}",destination_service="${GRPC_SVC}",request_protocol="grpc",grpc_response_status="14",response_code="200"})`), 11, `${reporter}: gRPC UNAVAILABLE (HTTP 200)`)
  }
  t.equal(await total(`sum(istio_requests_total{reporter="destination",destination_service="${HTTP_SVC}"}) by (destination_workload)`), 41)
  const servers = await p.query(`sum(istio_requests_total{reporter="destination",destination_service="${HTTP_SVC}"}) by (node, connection_security_policy)`)
  t.same(servers.map((s) => `${s.metric.node} ${s.metric.connection_security_policy}`).sort(), ['node1 none', 'node2 mutual_tls'],
    'the destination reports: node1 for its same-node pod (no network crossed), node2 for the tunnelled requests')

  const success = await p.query('sum(rate(istio_requests_total{reporter="destination",response_code!~"5.*"}[1m]))/sum(rate(istio_requests_total{reporter="destination"}[1m]))')
  t.equal(success.length, 1)
  t.equal(success[0]?.value, 1, 'success rate: no 5xx')
  const byCode = await p.query(`sum(rate(istio_requests_total{reporter="destination"}[1m])) by (response_code)`)
  t.same(byCode.map((s) => s.metric.response_code), ['200'], 'request rate by response code')
  t.ok((byCode[0]?.value ?? 0) > 0)

  // The dashboard's latency panel (irate: the last two samples) over the last 30 s, as
  // Grafana would draw it: at some instant the load was between two scrapes.
  const duration = (q: string, f: string, range: string): string => `(histogram_quantile(${q}, sum(${f}(istio_request_duration_milliseconds_bucket{reporter=~"destination",destination_service="${HTTP_SVC}"}[${range}])) by (le)) / 1000) or histogram_quantile(${q}, sum(${f}(istio_request_duration_seconds_bucket{reporter=~"destination",destination_service="${HTTP_SVC}"}[${range}])) by (le))`
  const now = Date.now() / 1000
  let drawn = 0
  for (let at = now - 30; at <= now; at += 0.5) {
    const qs = await Promise.all(['0.50', '0.90', '0.99'].map(async (q) => (await p.query(duration(q, 'irate', '1m'), at))[0]?.value ?? NaN))
    if (!qs.every(Number.isFinite)) continue
    drawn++
    t.ok(qs[0]! > 0 && qs[0]! <= qs[1]! && qs[1]! <= qs[2]! && qs[2]! < 1, `dashboard at ${at.toFixed(1)}: p50 ≤ p90 ≤ p99, under a second (${qs.join(', ')} s)`)
  }
  t.ok(drawn > 0, 'the dashboard\'s P50/P90/P99 panel has points during the load')
  // The same quantiles over the last minute (rate, as Kiali's response-time query reads them).
  const quantiles = await Promise.all(['0.50', '0.90', '0.99'].map(async (q) => (await p.query(duration(q, 'rate', '1m')))[0]?.value ?? NaN))
  t.ok(quantiles[0]! > 0 && quantiles[0]! <= quantiles[1]! && quantiles[1]! <= quantiles[2]! && quantiles[2]! < 1, `p50 ≤ p90 ≤ p99 over a minute, under a second (${quantiles.join(', ')} s)`)

  const graph = await p.query(`sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="l7"} [60s])) by (${GROUP_BY}) > 0`)
  const edges = graph.map((s) => `${s.metric.source_workload} -> ${s.metric.destination_service_name}/${s.metric.destination_workload} ${s.metric.request_protocol} ${s.metric.response_code} ${s.metric.grpc_response_status ?? '-'}`).sort()
  t.same(edges, ['client -> grpc-node/grpc-node grpc 200 0', 'client -> grpc-node/grpc-node grpc 200 14', 'client -> http/http http 200 -'], 'Kiali\'s graph: one edge per protocol, code and gRPC status')
  for (const s of graph) {
    t.match(s.metric, {
      source_cluster: 'Kubernetes',
      source_workload_namespace: 'l7',
      source_canonical_service: 'client',
      source_canonical_revision: 'latest',
      destination_cluster: 'Kubernetes',
      destination_service_namespace: 'l7',
      destination_workload_namespace: 'l7',
      destination_canonical_revision: 'latest',
      response_flags: '-'
    })
  }

  // One access line per request at each proxy, beside the connection lines.
  const lines = [...nodeLog(lab, 'node1'), ...nodeLog(lab, 'node2')].filter((l) => l.msg === 'request')
  const httpServed = lines.filter((l) => l.reporter === 'destination' && l.request_protocol === 'http' && l.destination?.workload === 'http')
  t.equal(httpServed.length, 41, 'one destination line per HTTP request')
  t.match(httpServed.at(-1), { method: 'GET', authority: 'http:8080', path: '/', protocol: 'HTTP/1.1', status: 200, response_flags: '-', source: { workload: 'client', namespace: 'l7' }, endpoint: /:8080$/, request_id: /./ })
  const grpcFailed = lines.filter((l) => l.reporter === 'source' && l.grpc_status === 14)
  t.equal(grpcFailed.length, 11, 'one source line per UNAVAILABLE call')
  t.match(grpcFailed.at(-1), { method: 'POST', path: /Echo\/Unary$/, protocol: 'HTTP/2', request_protocol: 'grpc', status: 200, destination: { workload: 'grpc-node' }, endpoint: /:50051$/ })
})
