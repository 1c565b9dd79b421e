import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { register } from 'prom-client'
import { createAccessLog } from '../../src/telemetry/access-log'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import { METRIC_NAMES, ProxyMetrics } from '../../src/telemetry/metrics'
import { createTunnelRefusalLog, REFUSAL_LOG_LIMITS } from '../../src/telemetry/tunnel-refusals'
import { createTrace, parseTraceSetting } from '../../src/telemetry/trace'
import { counter } from './prom-text'

function record (over: Partial<ConnectionRecord> = {}, bytes = { sent: 0, received: 0 }): ConnectionRecord {
  return {
    direction: 'outbound',
    source: { pod: 'client', namespace: 'app', workload: 'client', ip: '10.244.0.5', port: 40000 },
    originalDst: { address: 'fd00:96::a', port: 80, family: 6 },
    service: 'server.app',
    endpoint: { address: 'fd00:244::b', port: 8080, family: 6 },
    destination: { pod: 'server-b', namespace: 'app', workload: 'server' },
    sourcePrincipal: null,
    destinationPrincipal: null,
    mtls: false,
    result: 'ok',
    errorCode: null,
    errorReason: null,
    bytesReceived: () => bytes.received,
    bytesSent: () => bytes.sent,
    durationMs: () => 12.3456,
    telemetry: null,
    ...over
  }
}

function capture (level = 'info'): { log: pino.Logger, lines: any[] } {
  const lines: any[] = []
  const stream = new Writable({ write (c, _e, cb) { lines.push(JSON.parse(String(c))); cb() } })
  return { log: pino({ level }, stream), lines }
}

t.test('access log: one JSON line with the contract\'s field names', async (t) => {
  const { log, lines } = capture()
  createAccessLog(log)(record({}, { sent: 300, received: 120 }))
  t.equal(lines.length, 1)
  const l = lines[0]
  t.equal(l.msg, 'access')
  t.same(
    Object.keys(l).filter((k) => !['level', 'time', 'pid', 'hostname'].includes(k)),
    ['direction', 'source', 'original_destination', 'destination_service', 'endpoint', 'destination', 'mtls', 'bytes_received', 'bytes_sent', 'duration_ms', 'result', 'msg']
  )
  t.same(l.source, { pod: 'client', namespace: 'app', workload: 'client', ip: '10.244.0.5', port: 40000 })
  t.equal(l.original_destination, '[fd00:96::a]:80')
  t.equal(l.endpoint, '[fd00:244::b]:8080')
  t.equal(l.bytes_received, 120)
  t.equal(l.bytes_sent, 300)
  t.equal(l.duration_ms, 12.346)
})

t.test('access log: unknown parts are omitted, error code included', async (t) => {
  const { log, lines } = capture()
  createAccessLog(log)(record({ source: { pod: null, namespace: null, workload: null, ip: '10.1.1.1', port: 5 }, originalDst: null, service: null, endpoint: null, destination: null, result: 'no_original_dst', errorCode: 'ECONNRESET' }))
  const l = lines[0]
  t.same(l.source, { ip: '10.1.1.1', port: 5 })
  for (const k of ['original_destination', 'destination_service', 'endpoint', 'destination']) t.notOk(k in l, `${k} omitted`)
  t.equal(l.result, 'no_original_dst')
  t.equal(l.error_code, 'ECONNRESET')
})

t.test('access log and metrics: principals, mtls, error reason; Istio\'s connection_security_policy label', async (t) => {
  const { log, lines } = capture()
  const r = record({
    sourcePrincipal: 'spiffe://cluster.local/ns/app/sa/client',
    destinationPrincipal: 'spiffe://cluster.local/ns/app/sa/server',
    mtls: true,
    result: 'connect_error',
    errorCode: 'FERRY_ERR_TUNNEL_PEER',
    errorReason: 'wrong-identity'
  })
  createAccessLog(log)(r)
  t.match(lines[0], {
    source_principal: 'spiffe://cluster.local/ns/app/sa/client',
    destination_principal: 'spiffe://cluster.local/ns/app/sa/server',
    mtls: true,
    error_code: 'FERRY_ERR_TUNNEL_PEER',
    error_reason: 'wrong-identity'
  })
  const m = new ProxyMetrics()
  m.connectionAccepted(r)
  m.connectionClosed(r)
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.closed, { reporter: 'source', source_principal: 'spiffe://cluster.local/ns/app/sa/client', destination_principal: 'spiffe://cluster.local/ns/app/sa/server', connection_security_policy: 'unknown', response_flags: 'UF' }), 1, 'the source side cannot know the server\'s policy: unknown, as Istio')
  const tunnelled = record({ direction: 'inbound', sourcePrincipal: 'spiffe://cluster.local/ns/app/sa/client', mtls: true })
  m.connectionAccepted(tunnelled)
  m.connectionClosed(tunnelled)
  t.equal(counter(await m.text(), METRIC_NAMES.closed, { reporter: 'destination', connection_security_policy: 'mutual_tls', response_flags: '-' }), 1)
  const plain = record({ direction: 'inbound', result: 'denied_plaintext' })
  m.connectionAccepted(plain)
  m.connectionClosed(plain)
  t.equal(counter(await m.text(), METRIC_NAMES.closed, { reporter: 'destination', source_principal: 'unknown', connection_security_policy: 'none', response_flags: 'NR' }), 1)
})

t.test('tunnel refusals: one warn line with the reason, and a counter by side, stage and reason', async (t) => {
  const { log, lines } = capture()
  const m = new ProxyMetrics()
  const hook = createTunnelRefusalLog(log, m)
  hook({ side: 'server', stage: 'verify', reason: 'other-ca', detail: 'no path to a root', remote: '172.30.0.1:40000', servername: 'x.id.ferry.internal', localSpiffeId: 'spiffe://cluster.local/ns/app/sa/server' })
  hook({ side: 'server', stage: 'verify', reason: 'other-ca', detail: 'no path to a root', remote: '172.30.0.1:40002', servername: null })
  hook({ side: 'server', stage: 'stream', reason: 'refused', detail: 'not here', remote: '172.30.0.1:40000', servername: 'x.id.ferry.internal', peerSpiffeId: 'spiffe://cluster.local/ns/app/sa/client', status: 404, authority: '10.0.0.9:80' })
  t.equal(lines.length, 3)
  t.match(lines[0], { level: 40, msg: 'tunnel refused', side: 'server', stage: 'verify', reason: 'other-ca', detail: 'no path to a root', remote: '172.30.0.1:40000', servername: 'x.id.ferry.internal', local_principal: 'spiffe://cluster.local/ns/app/sa/server' })
  t.notOk('servername' in lines[1], 'no SNI: omitted')
  t.match(lines[2], { peer_principal: 'spiffe://cluster.local/ns/app/sa/client', status: 404, authority: '10.0.0.9:80' })
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.tunnelRefusals, { side: 'server', stage: 'verify', reason: 'other-ca' }), 2)
  t.equal(counter(text, METRIC_NAMES.tunnelRefusals, { reason: 'refused' }), 1)
})

t.test('tunnel refusals in a flood: lines are rate-limited, the rest summed up by reason, every refusal counted', async (t) => {
  // Guards the line budget: without it a flood of refusals is a flood of log lines.
  const { log, lines } = capture()
  const m = new ProxyMetrics()
  let now = 1_000_000
  const hook = createTunnelRefusalLog(log, m, { now: () => now, summaryMs: 50 })
  const refusal = (reason: 'rate-limit' | 'first-byte-timeout'): void => { hook({ side: 'server', stage: 'accept', reason, detail: 'x', remote: '172.30.0.254:1', servername: null }) }
  for (let i = 0; i < 1000; i++) refusal(i % 4 === 0 ? 'first-byte-timeout' : 'rate-limit')
  t.equal(lines.filter((l) => l.msg === 'tunnel refused').length, REFUSAL_LOG_LIMITS.burst, 'a burst of lines, then none')
  await new Promise((resolve) => setTimeout(resolve, 120))
  const summaries = lines.filter((l) => l.msg === 'tunnel refusals suppressed')
  t.equal(summaries.length, 1, 'one summary line')
  t.match(summaries[0], { level: 40, suppressed: 1000 - REFUSAL_LOG_LIMITS.burst })
  t.equal(summaries[0].by_reason['rate-limit'] + summaries[0].by_reason['first-byte-timeout'], 1000 - REFUSAL_LOG_LIMITS.burst, 'with counts by reason')
  now += 1000
  for (let i = 0; i < 100; i++) refusal('rate-limit')
  t.equal(lines.filter((l) => l.msg === 'tunnel refused').length, REFUSAL_LOG_LIMITS.burst + REFUSAL_LOG_LIMITS.perSecond, 'a second later: that second\'s lines')
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.tunnelRefusals, { stage: 'accept' }), 1100, 'the metric counts every refusal')
  t.equal(counter(text, METRIC_NAMES.logLinesDropped, { reason: 'rate_limited' }), 1100 - REFUSAL_LOG_LIMITS.burst - REFUSAL_LOG_LIMITS.perSecond, 'and every line not written')
})

t.test('access log: nothing is written when info is off', async (t) => {
  const { log, lines } = capture('warn')
  createAccessLog(log)(record())
  t.equal(lines.length, 0)
})

t.test('metrics live on their own registry, so two agents in one process do not collide', async (t) => {
  const a = new ProxyMetrics()
  const b = new ProxyMetrics()
  t.not(a.registry, b.registry)
  t.equal(register.getSingleMetric(METRIC_NAMES.opened), undefined, 'not on the global registry')
  const r = record({ result: 'connect_error', errorCode: 'ECONNREFUSED' })
  a.connectionAccepted(r)
  a.connectionOpened(r)
  a.connectionClosed(r)
  const text = await a.text()
  const labels = { reporter: 'source', source_workload: 'client', source_workload_namespace: 'app', destination_service: 'server.app.svc.cluster.local', destination_workload: 'server', destination_workload_namespace: 'app' }
  t.equal(counter(text, METRIC_NAMES.opened, labels), 1)
  t.equal(counter(text, METRIC_NAMES.closed, { ...labels, response_flags: 'UF' }), 1)
  t.match(text, /istio_tcp_sent_bytes_total\{reporter="source",source_workload="client",source_workload_namespace="app",source_principal="unknown",source_app="unknown",source_version="unknown",source_canonical_service="client",source_canonical_revision="latest",source_cluster="Kubernetes",destination_workload="server",destination_workload_namespace="app",destination_principal="unknown",destination_app="unknown",destination_version="unknown",destination_canonical_service="server",destination_canonical_revision="latest",destination_cluster="Kubernetes",destination_service="server.app.svc.cluster.local",destination_service_name="server",destination_service_namespace="app",request_protocol="tcp",response_flags="-",connection_security_policy="unknown"\} 0/)
  t.equal(counter(await b.text(), METRIC_NAMES.opened), 0, 'the other registry is untouched')
})

t.test('opened is counted once even if reported again; closed implies opened', async (t) => {
  const m = new ProxyMetrics()
  const r = record()
  m.connectionAccepted(r)
  m.connectionOpened(r)
  m.connectionOpened(r)
  m.connectionClosed(r)
  const r2 = record({ direction: 'inbound' })
  m.connectionAccepted(r2)
  m.connectionClosed(r2)
  const text = await m.text()
  t.equal(counter(text, METRIC_NAMES.opened), 2)
  t.equal(counter(text, METRIC_NAMES.closed), 2)
  t.equal(counter(text, METRIC_NAMES.active), 0)
})

t.test('enrolled pods gauge', async (t) => {
  const m = new ProxyMetrics()
  m.setEnrolledPods(3)
  t.equal(counter(await m.text(), METRIC_NAMES.enrolledPods), 3)
})

t.test('trace: off costs a shared no-op; on writes JSON lines to the sink', async (t) => {
  const out: string[] = []
  const sink = (l: string): void => { out.push(l) }
  const off = createTrace('proxy', parseTraceSetting('discovery, capture'), sink)
  t.equal(off.on, false)
  off('never')
  t.equal(off, createTrace('balancer', parseTraceSetting(''), sink), 'one shared no-op')
  t.same(out, [])
  const on = createTrace('proxy', parseTraceSetting('discovery,proxy'), sink)
  t.equal(on.on, true)
  on('accepted', { port: 1 })
  t.match(JSON.parse(out[0]), { trace: 'proxy', msg: 'accepted', port: 1 })
  t.equal(createTrace('anything', parseTraceSetting('all'), sink).on, true)
  t.equal(createTrace('anything', parseTraceSetting('*'), sink).on, true)
})
