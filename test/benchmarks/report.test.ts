import t from 'tap'
import { parseH2loadLog, parseH2loadSummary, percentile, summarizeMicros } from '../../benchmarks/report/stats'
import { barChart, formatValue } from '../../benchmarks/report/svg'
import { mainTable, ratesTable, renderCharts, renderMarkdown, table } from '../../benchmarks/report/markdown'
import { evaluateTargets } from '../../benchmarks/report/targets'
import type { Results } from '../../benchmarks/report/results'
import type { Measured } from '../../benchmarks/cases/measure'
import { scaleManifest } from '../../benchmarks/cases/scale'
import { harnessClusterList } from '../../benchmarks/cases/pods'

// The benchmark report's pure parts: statistics, parsing of h2load's output, the
// tables, the targets and the SVG charts. No timing is asserted; the inputs are made up.

const machine = {
  cores: 2, cpuModel: 'test cpu', memoryGiB: 4, kernel: '6.1.0', node: 'v20.0.0', haproxy: '2.6', nginx: '1.22', h2load: '1.52', curl: '7.88', openssl: '3.0', gitCommit: 'abc', gitDirty: false
}

function measured (reqPerSec: number, p99Ms: number, cpuUs: number | null): Measured {
  return {
    load: { seconds: 1, reqPerSec, total: reqPerSec, succeeded: reqPerSec, failed: 0, errored: 0, timeout: 0, non2xx: 0, latency: { count: reqPerSec, p50Ms: p99Ms / 2, p99Ms, p999Ms: p99Ms * 2, maxMs: p99Ms * 3 } },
    proxyCpuSeconds: cpuUs === null ? 0 : cpuUs * reqPerSec / 1e6,
    proxyCpuUsPerRequest: cpuUs,
    proxyRssPeakBytes: cpuUs === null ? null : 50 * 2 ** 20
  }
}

const results = (): Results => ({
  machine,
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:05:00.000Z',
  quick: false,
  keepalive: {
    'direct-same': measured(30000, 1, null),
    'ferry-same': measured(24000, 1.5, 30),
    'direct-cross': measured(28000, 1.2, null),
    'ferry-cross': measured(12000, 2.2, 40),
    'haproxy-cross': measured(10000, 2.0, 50)
  },
  rates: { 1000: { 'direct-cross': { ...measured(1000, 1, null), targetRps: 1000 }, 'ferry-cross': { ...measured(1000, 1.5, 60), targetRps: 1000 }, 'haproxy-cross': { ...measured(1000, 1.1, 80), targetRps: 1000 } } },
  bulk: { 'ferry-cross': { bytes: 1e9, seconds: 2, mbPerSec: 500, proxyCpuSecondsPerGiB: 1 }, 'haproxy-cross': { bytes: 1e9, seconds: 2, mbPerSec: 500, proxyCpuSecondsPerGiB: 1 } },
  scale: { points: [{ pods: 10, labUpMs: 1000, agentRssBytes: 60 * 2 ** 20 }, { pods: 100, labUpMs: 5000, agentRssBytes: 69 * 2 ** 20 }], bytesPerPod: 9 * 2 ** 20 / 90, restartPods: 100, restartMs: 2000 },
  errors: {}
})

t.test('percentile is nearest-rank and NaN when empty', async (t) => {
  const s = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  t.equal(percentile(s, 50), 5)
  t.equal(percentile(s, 99), 10)
  t.equal(percentile(s, 10), 1)
  t.equal(percentile(Float64Array.from([7]), 99.9), 7)
  t.ok(Number.isNaN(percentile(new Float64Array(0), 50)))
})

t.test('summarizeMicros sorts and converts to milliseconds', async (t) => {
  const sum = summarizeMicros([3000, 1000, 2000])
  t.same(sum, { count: 3, p50Ms: 2, p99Ms: 3, p999Ms: 3, maxMs: 3 })
})

t.test('parseH2loadLog keeps 2xx latencies and counts the rest', async (t) => {
  const log = '1795655957728456\t200\t325\n1795655957728805\t503\t219\n1795655957728528\t204\t501\n'
  const r = parseH2loadLog(log)
  t.same([...r.latenciesUs], [325, 501])
  t.equal(r.non2xx, 1)
})

t.test('parseH2loadSummary reads the rate and counts, in s or ms', async (t) => {
  const out = 'finished in 3.00s, 62429.67 req/s, 75.26MB/s\nrequests: 187289 total, 187305 started, 187289 done, 187280 succeeded, 9 failed, 0 errored, 0 timeout\n'
  t.same(parseH2loadSummary(out), { seconds: 3, reqPerSec: 62429.67, total: 187289, succeeded: 187280, failed: 9, errored: 0, timeout: 0 })
  t.equal(parseH2loadSummary(out.replace('3.00s', '132.73ms')).seconds, 0.13273)
  t.throws(() => parseH2loadSummary('h2load: connection refused'))
})

t.test('targets are scored in their own direction', async (t) => {
  const checks = evaluateTargets(results())
  const by = (prefix: string) => checks.find((c) => c.target.startsWith(prefix))
  t.equal(by('cross-node keep-alive')?.met, true, '12000 vs 10000 req/s')
  t.equal(by('cross-node keep-alive')?.value, '1.20×')
  t.equal(by('cross-node proxy CPU per request')?.met, true, '40 µs vs 50 µs')
  t.equal(by('cross-node proxy CPU per request')?.score, 1.25)
  t.equal(by('new connections')?.met, null, 'not measured')
  t.equal(by('p99 at 1000')?.value, '+0.400 ms')
  t.equal(by('p99 at 1000')?.met, false)
  t.equal(by('bulk')?.met, true)
  t.equal(by('agent RSS with 100 pods')?.met, true)
  t.equal(by('agent RSS growth')?.value, '102.4 KiB')
  t.equal(by('agent RSS growth')?.met, false)
  t.equal(by('same-node')?.met, true, '0.8× direct')
})

t.test('the main table compares each meshed path with its own direct path', async (t) => {
  const md = mainTable(results())
  const row = (p: string): string[] => (md.split('\n').find((l) => l.startsWith(`| ${p} |`)) ?? '').split(' | ')
  t.equal(row('ferry-same')[5], '+0.500', 'p99 added over direct-same')
  t.equal(row('ferry-cross')[5], '+1.000', 'p99 added over direct-cross')
  t.equal(row('direct-cross')[5], '–')
  t.match(ratesTable(results()), /\| 1000 \| ferry-cross \| 1000 \| 0\.750 \| 1\.500 \| 3\.000 \| \+0\.500 \| 60\.0 \|/)
  t.equal(table(['a', 'b'], [['1', '2']]), '| a | b |\n| --- | --- |\n| 1 | 2 |')
})

t.test('the report names the machine and lists failures', async (t) => {
  const r = results()
  r.errors.idle = 'connections never all opened'
  const md = renderMarkdown(r)
  t.match(md, /2 cores \(test cpu\)/)
  t.match(md, /- idle: connections never all opened/)
})

t.test('charts are SVG with one bar per path and escaped labels', async (t) => {
  const charts = renderCharts(results())
  t.ok(charts['keepalive-rps.svg'].startsWith('<svg'))
  t.equal(charts['keepalive-rps.svg'].match(/<rect /g)?.length, 5)
  t.equal(charts['cpu-per-request.svg'].match(/<rect /g)?.length, 3, 'direct paths have no proxy CPU')
  const svg = barChart('a < b', 'ms', [{ label: 'x&y', value: 2 }, { label: 'none', value: null }])
  t.match(svg, /a &lt; b/)
  t.match(svg, /x&amp;y/)
  t.match(svg, />n\/a</)
  t.equal(formatValue(12345), '12.3k')
  t.equal(formatValue(1.234), '1.23')
})

t.test('the scale manifest has one node, one meshed namespace and N pods', async (t) => {
  const y = scaleManifest(3)
  t.equal(y.match(/kind: Pod/g)?.length, 3)
  t.match(y, /ferry.dev\/mesh: enabled/)
})

t.test('the many-pods harness lists every pod on the node with the lab annotations', async (t) => {
  const list = harnessClusterList('fbh1', 'node1', 300, '/var/run/netns', '/sys/fs/cgroup/x') as { items: Array<{ kind: string, metadata: { annotations?: Record<string, string> }, status: { podIP?: string } }> }
  const pods = list.items.filter((i) => i.kind === 'Pod')
  t.equal(pods.length, 300)
  t.equal(pods[299].metadata.annotations?.['lab.ferry.dev/netns'], '/var/run/netns/fbh1-299')
  t.equal(new Set(pods.map((p) => p.status.podIP)).size, 300, 'distinct pod IPs past 250')
})
