import t from 'tap'
import { median, medianRecord, parseH2loadLog, parseH2loadSummary, percentile, summarizeMicros } from '../../benchmarks/report/stats'
import { alternatedFigures, medianByPath, medianByRate, rotated } from '../../benchmarks/report/alternated'
import { bothCores, workersRows } from '../../benchmarks/report/workers'
import type { WorkersResult, WorkersRun } from '../../benchmarks/cases/workers'
import { barChart, formatValue } from '../../benchmarks/report/svg'
import { mainTable, ratesTable, renderCharts, renderMarkdown, runsTable, table, workersTable } from '../../benchmarks/report/markdown'
import { evaluateTargets } from '../../benchmarks/report/targets'
import type { Results } from '../../benchmarks/report/results'
import type { Measured } from '../../benchmarks/cases/measure'
import type { RateResult } from '../../benchmarks/cases/rate'
import type { AlternatedRun } from '../../benchmarks/report/results'
import { scaleManifest } from '../../benchmarks/cases/scale'
import { growthPerPod, harnessClusterList } from '../../benchmarks/cases/pods'

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
  t.equal(by('cross-node proxy CPU per request')?.met, true, '40 µs vs 50 µs: 0.8×, at most 0.9× wanted')
  t.ok(Math.abs((by('cross-node proxy CPU per request')?.score ?? 0) - 0.9 / 0.8) < 1e-9)
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

// The alternated runs (--runs N): every run kept, the medians per path, and the target
// figures computed within each run, then their median. These fail without the code:
// a target judged on one run, or on the ratio of medians, gives other values below.

t.test('median takes the middle (the mean of the middle two) and skips what was not measured', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([null, 5, undefined, NaN, 1]), 3)
  t.ok(Number.isNaN(median([])))
  t.ok(Number.isNaN(median([null])))
})

t.test('medianRecord takes each figure\'s median, nested, keeping nulls where nothing was measured', async (t) => {
  const m = medianRecord([measured(100, 3, null), measured(300, 1, null), measured(200, 2, null)])
  t.equal(m.load.reqPerSec, 200)
  t.equal(m.load.latency.p99Ms, 2)
  t.equal(m.proxyCpuUsPerRequest, null)
  t.equal(m.proxyRssPeakBytes, null)
  const c = medianRecord([measured(100, 1, 10), measured(100, 1, 30)])
  t.equal(c.proxyCpuUsPerRequest, 20)
  t.throws(() => medianRecord([]))
})

t.test('medianByPath and medianByRate summarize each path over the runs that measured it', async (t) => {
  const runs: Array<Record<string, Measured>> = [{ a: measured(1, 1, 1), b: measured(10, 1, 1) }, { a: measured(3, 1, 1) }, { a: measured(2, 1, 1), b: measured(30, 1, 1) }]
  const m = medianByPath(runs)
  t.equal(m.a.load.reqPerSec, 2)
  t.equal(m.b.load.reqPerSec, 20, 'b ran twice')
  const r = medianByRate([{ 1000: { a: measured(1, 5, 1) } }, { 1000: { a: measured(1, 7, 1) } }, { 1000: { a: measured(1, 6, 1) } }])
  t.equal(r['1000'].a.load.latency.p99Ms, 6)
})

t.test('rotated moves each run\'s start by an even share of the paths', async (t) => {
  const six = ['a', 'b', 'c', 'd', 'e', 'f']
  t.same(rotated(six, 0, 3), six)
  t.same(rotated(six, 1, 3), ['c', 'd', 'e', 'f', 'a', 'b'])
  t.same(rotated(six, 2, 3), ['e', 'f', 'a', 'b', 'c', 'd'])
  t.same(rotated([1, 2, 4], 1, 3), [2, 4, 1])
  t.same(rotated([], 1, 3), [])
})

/** Three runs in which the better peer changes: the ratio is taken within each run. */
function alternatedResults (): Results {
  const ka = (f: number, h: number, n: number, fc: number, hc: number, nc: number): Record<string, Measured> => ({
    'ferry-cross': measured(f, 2, fc), 'haproxy-cross': measured(h, 2, hc), 'nginx-cross': measured(n, 2, nc), 'ferry-same': measured(900, 1, 1), 'direct-same': measured(1000, 1, null)
  })
  const keepalive = [ka(1200, 1000, 900, 40, 50, 60), ka(1000, 800, 1100, 50, 70, 45), ka(900, 1000, 1000, 60, 50, 50)]
  const rate = (f: number, h: number): Record<string, Record<string, RateResult>> => ({ 1000: { 'ferry-cross': { ...measured(1000, f, 60), targetRps: 1000 }, 'haproxy-cross': { ...measured(1000, h, 60), targetRps: 1000 } } })
  const rates = [rate(2.0, 1.5), rate(1.6, 1.5), rate(1.0, 1.5)]
  const run = <T>(figures: T, i: number): AlternatedRun<T> => ({ startedAt: `2026-01-01T00:0${i}:00.000Z`, loadAverage: 1.5, order: ['ferry-cross', 'haproxy-cross'], figures })
  const r = results()
  r.runs = { count: 3, keepalive: keepalive.map(run), rates: rates.map(run) }
  r.keepalive = medianByPath(keepalive)
  r.rates = medianByRate(rates)
  return r
}

t.test('each target figure is computed within a run, against that run\'s better peer, then its median taken', async (t) => {
  const figures = new Map(alternatedFigures(alternatedResults()).map((f) => [f.id, f]))
  const rps = figures.get('keepalive-rps-ratio')
  t.same(rps?.values, [1.2, 1000 / 1100, 0.9], 'run 2: nginx is the better peer')
  t.equal(rps?.median, 1000 / 1100)
  const cpu = figures.get('keepalive-cpu-ratio')
  t.same(cpu?.values, [0.8, 50 / 45, 1.2], 'the better peer for CPU is the lower one')
  t.equal(figures.get('same-node-ratio')?.median, 0.9)
  const over = figures.get('p99-over:1000')
  t.ok(over !== undefined && Math.abs(over.median - 0.1) < 1e-9, 'median of +0.5, +0.1, -0.5 ms')
})

t.test('targets take the median over the runs and say in how many runs each was met', async (t) => {
  const by = (prefix: string) => evaluateTargets(alternatedResults()).find((c) => c.target.startsWith(prefix))
  const rps = by('cross-node keep-alive req/s ≥ 1.1×')
  t.equal(rps?.value, '0.91×')
  t.equal(rps?.met, false)
  t.same(rps?.runs, ['1.20×', '0.91×', '0.90×'])
  t.equal(rps?.metInRuns, 1)
  const cpu = by('cross-node proxy CPU per request ≤ 0.9×')
  t.equal(cpu?.value, '1.11×')
  t.equal(cpu?.metInRuns, 1)
  const p99 = by('p99 at 1000')
  t.equal(p99?.value, '+0.100 ms')
  t.equal(p99?.met, true)
  t.equal(p99?.metInRuns, 2)
  t.equal(by('new connections/s ≥ 3×')?.met, null, 'not measured')
})

t.test('the runs table has a column per run and the median; run order lines name the load', async (t) => {
  const r = alternatedResults()
  const md = runsTable(r)
  t.match(md, /\| figure \| run 1 \| run 2 \| run 3 \| median \|/)
  t.match(md, /\| keep-alive req\/s, ferry-cross ÷ the better peer \| 1\.20× \| 0\.91× \| 0\.90× \| 0\.91× \|/)
  const full = renderMarkdown(r)
  t.match(full, /each figure the median of 3 alternated runs/)
  t.match(full, /run 1 \(00:00:00, load 1\.5\) ferry-cross → haproxy-cross/)
})

function workersRun (workers: number, reqPerSec: number, threads: Array<[string, number]>, peakCores = 1.5): WorkersRun {
  return {
    workers, served: workers, startedAt: '2026-01-01T00:00:00.000Z', loadAverage: 1, keepalive: measured(reqPerSec, 2, 50), newconn: measured(100, 2, 1000), wallSeconds: 6,
    node1Threads: threads.map(([role, cpuSeconds], i) => ({ tid: 100 + i, comm: 'node', role: role as 'main' | 'event loop' | 'other', cpuSeconds })),
    node1Concurrency: { windows: 60, peakCores, windowsOverOneCore: peakCores > 1 ? 6 : 0 },
    node1RssIdleBytes: 80 * 2 ** 20, node1RssPeakBytes: 90 * 2 ** 20, node2RssPeakBytes: 85 * 2 ** 20
  }
}

t.test('the workers summary: medians per worker count, and both cores used when two workers are busy', async (t) => {
  const w: WorkersResult = {
    counts: [1, 2],
    runs: [
      workersRun(1, 1000, [['main', 3]]), workersRun(2, 1500, [['event loop', 2.5], ['event loop', 2.0], ['main', 0.2]]),
      workersRun(1, 1200, [['main', 3]]), workersRun(2, 1700, [['event loop', 2.0], ['main', 1.0]]),
      workersRun(1, 1100, [['main', 3]]), workersRun(2, 1600, [['event loop', 1.8], ['event loop', 1.6]])
    ]
  }
  const rows = workersRows(w)
  t.equal(rows[0].reqPerSec, 1100)
  t.equal(rows[1].reqPerSec, 1600)
  t.same(rows[1].busiest, [2.0, 1.6])
  t.equal(rows[1].node1Cores, (1.8 + 1.6) / 6)
  t.equal(rows[1].peakCores, 1.5)
  t.equal(rows[1].overOneCore, 0.1)
  const both = bothCores(w)
  t.equal(both?.met, true, '2 of 3 runs: the two busiest threads are workers and ran at once')
  t.match(both?.summary, /^2 of 3 runs \(loop 2\.50 \+ loop 2\.00 of 6\.0 s, peak 1\.50 cores, 6 of 60 windows > 1; loop 2\.00 \+ main 1\.00/)
  t.equal(bothCores({ counts: [1], runs: [workersRun(1, 1, [['main', 3]])] }), null)
  const apart = bothCores({ counts: [2], runs: [workersRun(2, 1, [['event loop', 3.0], ['event loop', 2.9]], 1.0)] })
  t.equal(apart?.met, false, 'two busy workers that never ran at the same time')
  const r = results()
  r.workers = w
  t.match(workersTable(r), /\| 2 \| 2 \| 3 \| 1600 \|/)
  t.equal(evaluateTargets(r).find((c) => c.target.startsWith('with 2 workers'))?.met, true)
})

t.test('memory targets: per worker count, and 10,000 connections must all be held', async (t) => {
  const r = results()
  r.scale = { points: [{ pods: 10, workers: 1, labUpMs: 1, agentRssBytes: 60 * 2 ** 20 }, { pods: 100, workers: 1, labUpMs: 1, agentRssBytes: 70 * 2 ** 20 }, { pods: 100, workers: 4, labUpMs: 1, agentRssBytes: 170 * 2 ** 20 }], bytesPerPod: 10 * 2 ** 20 / 90, restartPods: 100, restartMs: 1 }
  const pts = (a: number, b: number) => [{ pods: 10, readyMs: 1, agentRssBytes: a * 2 ** 20 }, { pods: 1000, readyMs: 1, agentRssBytes: b * 2 ** 20 }]
  r.pods = { byWorkers: [{ workers: 1, points: pts(60, 100), bytesPerPod: growthPerPod(pts(60, 100)) }, { workers: 4, points: pts(120, 260), bytesPerPod: growthPerPod(pts(120, 260)) }] }
  const agent = { rssBeforeBytes: 100 * 2 ** 20, rssPeakBytes: 200 * 2 ** 20, rssAfterBytes: 150 * 2 ** 20, tunnelBuffers: null }
  r.manyConnections = { connections: 10000, open: 1365, failed: 8635, secondsToOpen: 5, holdSeconds: 8, node1: agent, node2: agent }
  const by = (prefix: string) => evaluateTargets(r).find((c) => c.target.startsWith(prefix))
  t.equal(by('agent RSS with 100 pods, 1 worker < 100 MiB (lab')?.met, true)
  t.equal(by('agent RSS with 100 pods, 4 workers < 160 MiB (lab')?.met, false)
  t.equal(by('agent RSS growth per enrolled pod < 100 KiB (harness, 1 worker')?.value, `${(40 * 1024 / 990).toFixed(1)} KiB`)
  t.equal(by('agent RSS growth per enrolled pod < 100 KiB (harness, 4 workers')?.met, false, '140 MiB over 990 pods')
  const many = by('10000 cross-node connections')
  t.equal(many?.met, false, 'RSS inside the limit, but most connections refused')
  t.equal(many?.value, '1365 held, 8635 failed; peak 200.0 MiB')
  t.match(renderMarkdown(r), /\| 100 \| 4 \| lab, with CA \| 170\.0 \|/)
})
