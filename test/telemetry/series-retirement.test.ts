import t from 'tap'
import { Registry } from 'prom-client'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import { IstioLabeler } from '../../src/telemetry/istio-labels'
import { REQUEST_METRIC_NAMES } from '../../src/telemetry/istio-request-metrics'
import { METRIC_NAMES, ProxyMetrics } from '../../src/telemetry/metrics'
import { IstioRequestTelemetry } from '../../src/telemetry/request-telemetry'
import { liveWorkloadsOf, namesGoneWorkload, RETIRE_UNSCRAPED_MS, SeriesRetirement, type RetirableSeries } from '../../src/telemetry/series-retirement'
import { counter } from './prom-text'
import { PODS, request } from './request-records'

// Istio's series of a workload that left the cluster (a pod without a controller is its
// own workload: churned pods would each leave theirs behind) are exported in one more
// scrape and then dropped; a series an open connection still counts on stays.

function conn (workload: string): ConnectionRecord {
  return {
    direction: 'outbound',
    source: { pod: 'client-0', namespace: 'app', workload: 'client-0', ip: '10.244.0.5', port: 40000 },
    originalDst: { address: '10.96.0.10', port: 80, family: 4 },
    service: 'churn.app',
    endpoint: { address: '10.244.1.7', port: 8080, family: 4 },
    destination: { pod: workload, namespace: 'app', workload },
    sourcePrincipal: null,
    destinationPrincipal: null,
    mtls: false,
    result: 'ok',
    errorCode: null,
    errorReason: null,
    bytesReceived: () => 10,
    bytesSent: () => 20,
    durationMs: () => 1,
    telemetry: null
  }
}

const live = (...workloads: string[]): ReturnType<typeof liveWorkloadsOf> => liveWorkloadsOf(['client-0', ...workloads].map((workload) => ({ namespace: 'app', workload })))

t.test('TCP series of a gone workload: exported in one more scrape, then dropped; one with an open connection stays', async (t) => {
  const m = new ProxyMetrics()
  for (const w of ['churn-1', 'churn-2']) { const r = conn(w); m.connectionAccepted(r); m.connectionOpened(r); m.connectionClosed(r) }
  const open = conn('churn-3')
  m.connectionAccepted(open)
  m.connectionOpened(open)
  t.equal(m.seriesCount, 3)

  m.retireGoneWorkloads(live('churn-2'))
  let text = await m.text()
  t.equal(counter(text, METRIC_NAMES.opened, { destination_workload: 'churn-1' }), 1, 'the scrape after it left still shows its final counts')
  t.equal(counter(text, METRIC_NAMES.closed, { destination_workload: 'churn-1' }), 1)
  text = await m.text()
  t.notMatch(text, /destination_workload="churn-1"/, 'the scrape after that: gone from every counter')
  t.equal(counter(text, METRIC_NAMES.opened, { destination_workload: 'churn-2' }), 1, 'a live workload keeps its series')
  t.equal(counter(text, METRIC_NAMES.opened, { destination_workload: 'churn-3' }), 1, 'a series an open connection counts on stays')
  t.equal(m.seriesCount, 2)

  m.connectionClosed(open)
  m.retireGoneWorkloads(live('churn-2'))
  text = await m.text()
  t.equal(counter(text, METRIC_NAMES.sent, { destination_workload: 'churn-3' }), 20, 'closed now: its last bytes are exported')
  await m.text()
  t.equal(m.seriesCount, 1)
})

t.test('request series of a gone workload are retired the same way; a workload back before the drop keeps its series', async (t) => {
  const registry = new Registry()
  const telemetry = new IstioRequestTelemetry({ registry, labeler: new IstioLabeler({ pods: PODS }), log: null })
  telemetry.requestEnded(request())
  const cart = (): number => counter(text, REQUEST_METRIC_NAMES.requests, { destination_workload: 'cart' })
  const shop = (...w: string[]): ReturnType<typeof liveWorkloadsOf> => liveWorkloadsOf(w.map((workload) => ({ namespace: 'shop', workload })))
  telemetry.retireGoneWorkloads(shop('web'))
  let text = await registry.metrics()
  t.equal(cart(), 1)
  telemetry.retireGoneWorkloads(shop('web', 'cart'))
  text = await registry.metrics()
  t.equal(cart(), 1, 'back in the snapshot: unmarked')
  telemetry.retireGoneWorkloads(shop('web'))
  text = await registry.metrics()
  text = await registry.metrics()
  t.equal(cart(), 0, 'gone: exported once, then dropped')
})

t.test('never scraped, a marked series is dropped after RETIRE_UNSCRAPED_MS; unknown workloads are never gone', async (t) => {
  let now = 0
  const series = new Map<string, RetirableSeries>([['a', { labels: { source_workload: 'x', source_workload_namespace: 'app', destination_workload: 'unknown', destination_workload_namespace: 'unknown' } }]])
  const r = new SeriesRetirement(series, () => now)
  t.same(r.mark(live()), [])
  now = RETIRE_UNSCRAPED_MS - 1
  t.same(r.mark(live()), [])
  now = RETIRE_UNSCRAPED_MS
  t.equal(r.mark(live()).length, 1)
  t.equal(series.size, 0)
  t.notOk(namesGoneWorkload({ source_workload: 'unknown', source_workload_namespace: 'unknown', destination_workload: 'unknown', destination_workload_namespace: 'unknown' }, live()))
})
