import t from 'tap'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import { METRIC_NAMES, ProxyMetrics } from '../../src/telemetry/metrics'
import { counter } from './prom-text'

// Regression: the data path counts into one cached Series per label set and prom-client
// hears about it only at scrape time (benchmarks/notes-newconn.md). These pin that a
// scrape still shows exactly what per-connection increments showed: per label set, per
// result, bytes of live and closed connections, the active gauge.

function conn (workload: string, over: Partial<ConnectionRecord> = {}, bytes = { sent: 0, received: 0 }): ConnectionRecord {
  return {
    direction: 'outbound',
    source: { pod: `${workload}-1`, namespace: 'app', workload, ip: '10.244.0.5', port: 40000 },
    originalDst: { address: '10.96.0.10', port: 80, family: 4 },
    service: 'server.app',
    endpoint: { address: '10.244.1.7', port: 8080, family: 4 },
    destination: { pod: 'server-b', namespace: 'app', workload: 'server' },
    sourcePrincipal: `spiffe://cluster.local/ns/app/sa/${workload}`,
    destinationPrincipal: 'spiffe://cluster.local/ns/app/sa/server',
    mtls: true,
    result: 'ok',
    errorCode: null,
    errorReason: null,
    bytesReceived: () => bytes.received,
    bytesSent: () => bytes.sent,
    durationMs: () => 1,
    telemetry: null,
    ...over
  }
}

function run (m: ProxyMetrics, r: ConnectionRecord): void {
  m.connectionAccepted(r)
  m.connectionOpened(r)
  m.connectionClosed(r)
}

t.test('cached series: interleaved label sets each count their own connections, per result', async (t) => {
  const m = new ProxyMetrics()
  for (let i = 0; i < 5; i++) {
    run(m, conn('a'))
    run(m, conn('b'))
    run(m, conn('a', { result: 'connect_error' }))
  }
  run(m, conn('b', { direction: 'inbound', mtls: false }))
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.opened, { source_workload: 'a' }), 10)
  t.equal(counter(text, METRIC_NAMES.opened, { source_workload: 'b' }), 6)
  t.equal(counter(text, METRIC_NAMES.opened, { source_workload: 'b', reporter: 'destination', connection_security_policy: 'none' }), 1, 'a label that differs is its own series')
  t.equal(counter(text, METRIC_NAMES.closed, { source_workload: 'a', response_flags: '-' }), 5)
  t.equal(counter(text, METRIC_NAMES.closed, { source_workload: 'a', response_flags: 'UF' }), 5)
  t.equal(counter(text, METRIC_NAMES.closed, { source_workload: 'b', response_flags: '-' }), 6)
  t.equal(counter(text, METRIC_NAMES.active), 0)
})

t.test('cached series: counts keep adding up across scrapes, and null labels are "unknown"', async (t) => {
  const m = new ProxyMetrics()
  run(m, conn('a'))
  t.equal(counter(await m.text(), METRIC_NAMES.opened, { source_workload: 'a' }), 1)
  run(m, conn('a'))
  run(m, conn('a'))
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.opened, { source_workload: 'a' }), 3, 'a second scrape adds only what is new')
  t.equal(counter(text, METRIC_NAMES.closed, { source_workload: 'a', response_flags: '-' }), 3)
  run(m, conn('a', { sourcePrincipal: null, service: null, destination: null }))
  const unknown = await m.text()
  t.equal(counter(unknown, METRIC_NAMES.opened, { source_principal: 'unknown', destination_service: 'unknown', destination_workload: 'unknown' }), 1)
  t.equal(counter(unknown, METRIC_NAMES.opened), 4)
})

t.test('cached series: bytes of live connections at scrape time, the rest at close, a 0 sample for an empty one', async (t) => {
  const m = new ProxyMetrics()
  const bytes = { sent: 100, received: 10 }
  const live = conn('a', { result: null }, bytes)
  m.connectionAccepted(live)
  m.connectionOpened(live)
  let text = await m.text()
  t.equal(counter(text, METRIC_NAMES.sent, { source_workload: 'a' }), 100)
  t.equal(counter(text, METRIC_NAMES.received, { source_workload: 'a' }), 10)
  t.equal(counter(text, METRIC_NAMES.active, { direction: 'outbound' }), 1)
  bytes.sent = 250
  bytes.received = 30
  ;(live as { result: string | null }).result = 'ok'
  m.connectionClosed(live)
  run(m, conn('b'))
  text = await m.text()
  t.equal(counter(text, METRIC_NAMES.sent, { source_workload: 'a' }), 250, 'reported once, not twice')
  t.equal(counter(text, METRIC_NAMES.received, { source_workload: 'a' }), 30)
  t.match(text, /istio_tcp_sent_bytes_total\{[^}]*source_workload="b"[^}]*\} 0/, 'a connection that moved nothing still shows a 0 sample')
  t.equal(counter(text, METRIC_NAMES.active, { direction: 'outbound' }), 0)
})
