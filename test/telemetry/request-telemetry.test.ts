import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { AggregatorRegistry, Registry } from 'prom-client'
import { IstioLabeler } from '../../src/telemetry/istio-labels'
import { BYTES_BUCKETS, DURATION_BUCKETS_MS, REQUEST_METRIC_NAMES } from '../../src/telemetry/istio-request-metrics'
import { MESSAGE_METRIC_NAMES } from '../../src/telemetry/istio-message-metrics'
import { ProxyMetrics, METRIC_NAMES } from '../../src/telemetry/metrics'
import { IstioRequestTelemetry } from '../../src/telemetry/request-telemetry'
import { counter } from './prom-text'
import { conn, PODS, request, WEB_ID } from './request-records'

function capture (): { log: pino.Logger, lines: any[] } {
  const lines: any[] = []
  const stream = new Writable({ write (c, _e, cb) { lines.push(JSON.parse(String(c))); cb() } })
  return { log: pino({ level: 'info' }, stream), lines }
}

function setup (): { registry: Registry, telemetry: IstioRequestTelemetry, lines: any[] } {
  const { log, lines } = capture()
  const registry = new Registry()
  const telemetry = new IstioRequestTelemetry({ registry, labeler: new IstioLabeler({ pods: PODS }), log })
  return { registry, telemetry, lines }
}

t.test('istio_requests_total: http and grpc, response code, grpc status, flags, reporter', async (t) => {
  const { registry, telemetry } = setup()
  telemetry.requestEnded(request())
  telemetry.requestEnded(request())
  telemetry.requestEnded(request({ responseCode: 503, responseFlags: 'UF' }))
  telemetry.requestEnded(request({ protocol: 'grpc', httpVersion: '2', grpcStatus: 14, method: 'POST', path: '/shop.Cart/Get' }))
  telemetry.requestEnded(request({ reporter: 'destination', conn: conn({ direction: 'inbound' }), responseCode: 403, responseFlags: 'RBAC' }))
  telemetry.requestEnded(request({ responseCode: 0, responseFlags: 'DC' }))
  const text = await registry.metrics()
  const name = REQUEST_METRIC_NAMES.requests
  t.equal(counter(text, name, { reporter: 'source', request_protocol: 'http', response_code: '200', response_flags: '-', grpc_response_status: '' }), 2)
  t.equal(counter(text, name, { response_code: '503', response_flags: 'UF' }), 1)
  t.equal(counter(text, name, { request_protocol: 'grpc', response_code: '200', grpc_response_status: '14' }), 1)
  t.equal(counter(text, name, { reporter: 'destination', response_code: '403', response_flags: 'RBAC', connection_security_policy: 'mutual_tls' }), 1)
  t.equal(counter(text, name, { response_code: '0', response_flags: 'DC' }), 1, 'no response sent: response_code 0, as Istio')
  t.equal(counter(text, name, { source_principal: WEB_ID, source_app: 'web', source_version: 'v1', destination_service: 'cart.shop.svc.cluster.local', destination_service_name: 'cart' }), 6)
  t.equal(telemetry.failures, 0)
})

t.test('istio_request_messages_total / istio_response_messages_total: gRPC calls\' messages, Istio\'s labels without response_code', async (t) => {
  const { registry, telemetry } = setup()
  const call = { protocol: 'grpc' as const, httpVersion: '2' as const, method: 'POST', path: '/shop.Cart/Watch', grpcStatus: 0 }
  telemetry.requestEnded(request({ ...call, requestMessages: 1, responseMessages: 40 }))
  telemetry.requestEnded(request({ ...call, requestMessages: 3, responseMessages: 2 }))
  telemetry.requestEnded(request({ ...call, grpcStatus: 14, requestMessages: 1, responseMessages: 0 }))
  telemetry.requestEnded(request())
  const text = await registry.metrics()
  const ok = { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '0', destination_service: 'cart.shop.svc.cluster.local', source_app: 'web' }
  t.equal(counter(text, MESSAGE_METRIC_NAMES.request, ok), 4)
  t.equal(counter(text, MESSAGE_METRIC_NAMES.response, ok), 42)
  t.equal(counter(text, MESSAGE_METRIC_NAMES.request, { grpc_response_status: '14' }), 1)
  t.notMatch(text, new RegExp(`${MESSAGE_METRIC_NAMES.request}\\{[^}]*response_code=`), 'no response_code label')
  t.notMatch(text, new RegExp(`${MESSAGE_METRIC_NAMES.request}\\{[^}]*request_protocol="http"`), 'plain HTTP requests have no messages')
  t.equal(telemetry.failures, 0)
})

t.test('the request histograms: Envoy\'s duration buckets, body sizes, _sum and _count', async (t) => {
  const { registry, telemetry } = setup()
  telemetry.requestEnded(request({ durationMs: 0.5, requestBytes: 0, responseBytes: 1 }))
  telemetry.requestEnded(request({ durationMs: 3, requestBytes: 100, responseBytes: 5000 }))
  telemetry.requestEnded(request({ durationMs: 7_200_000, requestBytes: 2e9, responseBytes: 10 }))
  const text = await registry.metrics()
  const bucket = (name: string, le: string): number => counter(text, `${name}_bucket`, { le })
  const d = REQUEST_METRIC_NAMES.duration
  t.same(text.split('\n').filter((l) => l.startsWith(`${d}_bucket{`)).map((l) => /le="([^"]+)"/.exec(l)![1]), [...DURATION_BUCKETS_MS.map(String), '+Inf'], 'Envoy\'s default buckets')
  t.equal(bucket(d, '0.5'), 1, 'a value on a bound is in that bucket')
  t.equal(bucket(d, '1'), 1)
  t.equal(bucket(d, '5'), 2)
  t.equal(bucket(d, '3600000'), 2)
  t.equal(bucket(d, '+Inf'), 3)
  t.equal(counter(text, `${d}_count`), 3)
  t.equal(counter(text, `${d}_sum`), 7_200_003.5)
  const rq = REQUEST_METRIC_NAMES.requestBytes
  t.same(text.split('\n').filter((l) => l.startsWith(`${rq}_bucket{`)).map((l) => /le="([^"]+)"/.exec(l)![1]), [...BYTES_BUCKETS.map(String), '+Inf'])
  t.equal(bucket(rq, '1'), 1, 'an empty body')
  t.equal(bucket(rq, '100'), 2)
  t.equal(bucket(rq, '1000000000'), 2)
  t.equal(bucket(rq, '+Inf'), 3)
  const rs = REQUEST_METRIC_NAMES.responseBytes
  t.equal(bucket(rs, '10'), 2)
  t.equal(counter(text, `${rs}_sum`), 5011)
})

t.test('per-worker sum: counters added and histogram buckets merged across registries', async (t) => {
  const a = setup()
  const b = setup()
  const tcpA = new ProxyMetrics(a.registry)
  const tcpB = new ProxyMetrics(b.registry)
  a.telemetry.requestEnded(request({ durationMs: 3 }))
  b.telemetry.requestEnded(request({ durationMs: 3 }))
  b.telemetry.requestEnded(request({ durationMs: 700 }))
  for (const m of [tcpA, tcpB]) {
    const r = conn({ result: 'ok' })
    m.connectionAccepted(r)
    m.connectionClosed(r)
  }
  const text = await AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]).metrics()
  t.equal(counter(text, REQUEST_METRIC_NAMES.requests), 3)
  t.equal(counter(text, `${REQUEST_METRIC_NAMES.duration}_bucket`, { le: '5' }), 2)
  t.equal(counter(text, `${REQUEST_METRIC_NAMES.duration}_bucket`, { le: '1000' }), 3)
  t.equal(counter(text, `${REQUEST_METRIC_NAMES.duration}_count`), 3)
  t.equal(counter(text, METRIC_NAMES.closed, { request_protocol: 'tcp', response_flags: '-' }), 2)
})

t.test('one access-log line per request, beside the connection lines', async (t) => {
  const { telemetry, lines } = setup()
  telemetry.requestEnded(request({ protocol: 'grpc', httpVersion: '2', method: 'POST', path: '/shop.Cart/Get', grpcStatus: 0, upstream: { address: '10.244.1.8', port: 8080, family: 4 } }))
  telemetry.requestEnded(request({ reporter: 'destination', conn: conn({ direction: 'inbound' }), responseCode: 403, responseFlags: 'RBAC', traceId: null, requestId: null, upstream: null, authz: { allowed: false, policy: 'shop/deny-admin' } }))
  t.equal(lines.length, 2)
  t.match(lines[0], {
    msg: 'request',
    reporter: 'source',
    direction: 'outbound',
    method: 'POST',
    authority: 'cart.shop:8080',
    path: '/shop.Cart/Get',
    protocol: 'HTTP/2',
    request_protocol: 'grpc',
    status: 200,
    grpc_status: 0,
    response_flags: '-',
    duration_ms: 3,
    bytes_received: 0,
    bytes_sent: 120,
    endpoint: '10.244.1.8:8080',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    request_id: 'req-1',
    source: { pod: 'web-1', namespace: 'shop', workload: 'web' },
    destination_service: 'cart.shop',
    destination: { pod: 'cart-b', namespace: 'shop', workload: 'cart' },
    source_principal: WEB_ID,
    mtls: true
  })
  t.notOk('destination_principal' in lines[0], 'the balanced-to pod\'s principal is not known without identities')
  t.match(lines[1], { msg: 'request', reporter: 'destination', status: 403, response_flags: 'RBAC', authz: { allowed: false, policy: 'shop/deny-admin' }, destination: { pod: 'cart-a' } })
  for (const k of ['trace_id', 'request_id', 'endpoint', 'grpc_status']) t.notOk(k in lines[1], `${k} omitted when unknown`)
})

t.test('requestEnded never throws', async (t) => {
  const { telemetry } = setup()
  t.doesNotThrow(() => { telemetry.requestEnded({ ...request(), conn: null } as any) })
  t.equal(telemetry.failures, 1)
})
