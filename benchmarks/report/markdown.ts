import { barChart, type Bar } from './svg'
import { baselineOf, PATH_ORDER, type Results } from './results'
import { evaluateTargets } from './targets'
import { alternatedFigures } from './alternated'
import { workersRows } from './workers'
import { median } from './stats'
import { l7Section } from './l7'
import type { AgentMemory, ProxyMemory } from '../cases/idle'

// results → Markdown tables (results/latest.md) and SVG charts (results/*.svg).

const MiB = 2 ** 20
const dash = '–'

const n = (v: number | null | undefined, digits = 0): string => v === null || v === undefined || !Number.isFinite(v) ? dash : v.toFixed(digits)
const ms = (v: number | null | undefined): string => n(v, 3)
const signed = (v: number | null | undefined): string => v === null || v === undefined || !Number.isFinite(v) ? dash : `${v >= 0 ? '+' : ''}${v.toFixed(3)}`

export function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function presentPaths (r: Results): string[] {
  const seen = new Set<string>()
  for (const part of [r.keepalive, r.newconn, r.bulk, r.idle, ...Object.values(r.rates ?? {})]) for (const k of Object.keys(part ?? {})) seen.add(k)
  return PATH_ORDER.filter((p) => seen.has(p))
}

export function mainTable (r: Results): string {
  const rows = presentPaths(r).map((p) => {
    const k = r.keepalive?.[p]
    const base = r.keepalive?.[baselineOf(p)]
    const added = k !== undefined && base !== undefined && p !== baselineOf(p) ? k.load.latency.p99Ms - base.load.latency.p99Ms : null
    const idle = r.idle?.[p]
    return [p, n(k?.load.reqPerSec), ms(k?.load.latency.p50Ms), ms(k?.load.latency.p99Ms), ms(k?.load.latency.p999Ms), signed(added),
      n(k?.proxyCpuUsPerRequest, 1), n(k?.proxyCpuUsPerRequest === null || k === undefined ? null : k.proxyCpuUsPerRequest / 1000, 3),
      n(r.newconn?.[p]?.load.reqPerSec), n(r.newconn?.[p]?.proxyCpuUsPerRequest, 1), n(r.bulk?.[p]?.mbPerSec),
      n(r.idleRss?.[p] === undefined ? null : r.idleRss[p] / MiB, 1), n(k?.proxyRssPeakBytes == null ? null : k.proxyRssPeakBytes / MiB, 1),
      n(idle === undefined ? null : idle.bytesPerConnection / 1024, 1)]
  })
  return table(['path', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p99 added ms', 'proxy CPU µs/req', 'CPU s per 1k req', 'new conn/s', 'proxy CPU µs/conn', 'bulk MB/s', 'proxy RSS idle MiB', 'proxy RSS load MiB', 'KiB per idle conn'], rows)
}

export function ratesTable (r: Results): string {
  const rows: string[][] = []
  for (const [rate, byPath] of Object.entries(r.rates ?? {})) {
    for (const p of PATH_ORDER) {
      const m = byPath[p]
      if (m === undefined) continue
      const base = byPath[baselineOf(p)]
      rows.push([rate, p, n(m.load.reqPerSec), ms(m.load.latency.p50Ms), ms(m.load.latency.p99Ms), ms(m.load.latency.p999Ms),
        p === baselineOf(p) || base === undefined ? dash : signed(m.load.latency.p99Ms - base.load.latency.p99Ms), n(m.proxyCpuUsPerRequest, 1)])
    }
  }
  return table(['target req/s', 'path', 'achieved req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p99 added ms', 'proxy CPU µs/req'], rows)
}

export function scaleTable (r: Results): string {
  const rows: string[][] = (r.scale?.points ?? []).map((p) => [String(p.pods), String(p.workers ?? dash), 'lab, with CA', n(p.agentRssBytes / MiB, 1), `lab up ${n(p.labUpMs / 1000, 1)}`])
  for (const s of r.pods?.byWorkers ?? []) {
    for (const p of s.points) rows.push([String(p.pods), String(s.workers), 'harness, no CA', n(p.agentRssBytes / MiB, 1), `agent ready ${n(p.readyMs / 1000, 2)}`])
  }
  return table(['enrolled pods', 'workers', 'how', 'agent RSS MiB', 'time s'], rows)
}

export function targetsTable (r: Results): string {
  const runs = (t: { runs?: readonly string[], metInRuns?: number }): string => t.runs === undefined ? dash : `${t.runs.join(', ')} (met in ${t.metInRuns ?? 0} of ${t.runs.length})`
  return table(['target', 'measured', 'each run', 'score (≥ 1 met)', 'met'], evaluateTargets(r).map((t) =>
    [t.target, t.value, runs(t), t.score === null ? dash : Number.isFinite(t.score) ? t.score.toFixed(2) : '∞', t.met === null ? dash : t.met ? 'yes' : `**no**`]))
}

/** Every alternated run's figures (one column per run) and their median. */
export function runsTable (r: Results): string {
  const figures = alternatedFigures(r).filter((f) => f.values.some((v) => v !== null))
  const count = Math.max(0, ...figures.map((f) => f.values.length))
  const rows = figures.map((f) => [f.label, ...Array.from({ length: count }, (_, i) => f.values[i] == null ? dash : f.format(f.values[i] as number)), Number.isFinite(f.median) ? f.format(f.median) : dash])
  return table(['figure', ...Array.from({ length: count }, (_, i) => `run ${i + 1}`), 'median'], rows)
}

/** The paths' order in each alternated run of each benchmark. */
export function runOrderLines (r: Results): string[] {
  const out: string[] = []
  for (const name of ['keepalive', 'rates', 'newconn', 'bulk'] as const) {
    const runs = r.runs?.[name]
    if (runs === undefined) continue
    out.push(`- ${name}: ${runs.map((x, i) => `run ${i + 1} (${x.startedAt.slice(11, 19)}${x.loadAverage === undefined ? '' : `, load ${n(x.loadAverage, 1)}`}) ${x.order.join(' → ')}`).join('; ')}`)
  }
  return out
}

export function workersTable (r: Results): string {
  if (r.workers === undefined) return ''
  return table(['workers', 'served', 'runs', 'keep-alive req/s', 'proxy CPU µs/req', 'new conn/s', 'proxy CPU µs/conn', 'node1 agent RSS idle MiB', 'node1 agent RSS load MiB', 'node2 agent RSS load MiB', 'node1 agent cores used', 'node1 busiest threads CPU s', 'node1 peak cores in 100 ms', 'windows > 1 core'],
    workersRows(r.workers).map((w) => [String(w.workers), n(w.served), String(w.runs), n(w.reqPerSec), n(w.cpuUsPerRequest, 1), n(w.connPerSec), n(w.cpuUsPerConnection, 1),
      n(w.node1RssIdleBytes / MiB, 1), n(w.node1RssPeakBytes / MiB, 1), n(w.node2RssPeakBytes / MiB, 1), n(w.node1Cores, 2), `${n(w.busiest[0], 2)} + ${n(w.busiest[1], 2)} of ${n(w.wallSeconds, 1)}`,
      n(w.peakCores, 2), Number.isFinite(w.overOneCore) ? `${n(w.overOneCore * 100, 0)} %` : dash]))
}

export function manyConnectionsLine (m: NonNullable<Results['manyConnections']>): string {
  const KiB = 1024
  const perConn = (a: { bytesPerConnection?: number }): string => a.bytesPerConnection === undefined ? '' : `, ${n(a.bytesPerConnection / KiB, 1)} KiB per connection`
  const buffers = (b: AgentMemory['tunnelBuffers'] | undefined, when: string): string => b == null ? '' : `; ${when}: ${n(b.streams)} streams reserving ${n(b.reservedBytes / MiB, 1)} of the ${n(b.budgetBytes / MiB)} MiB buffer budget`
  const agent = (a: typeof m.node1): string => `${n(a.rssBeforeBytes / MiB, 1)} → peak ${n(a.rssPeakBytes / MiB, 1)} → ${n(a.rssAfterBytes / MiB, 1)} MiB${perConn(a)} (tunnel${buffers(a.tunnelBuffers, 'held').slice(1)}${buffers(a.tunnelBuffersAfter, 'closed')})`
  const head = `**${n(m.connections)} idle connections on ferry-cross** (one request each, its answer awaited, then held ${n(m.holdSeconds)} s${m.loadAverage === undefined ? '' : `; load average ${n(m.loadAverage, 1)}`}): ${n(m.open)} open, ${n(m.failed)} failed, in ${n(m.secondsToOpen, 1)} s; ` +
    `node1's agent (outbound) ${agent(m.node1)}, node2's (inbound) ${agent(m.node2)} (DaemonSet limit 512 MiB).`
  const p = m.peer
  if (p == null) return head
  const ratio = (a: ProxyMemory, b: ProxyMemory): string => a.bytesPerConnection === undefined || b.bytesPerConnection === undefined ? dash : `${n(a.bytesPerConnection / b.bytesPerConnection, 2)}×`
  return [head, '', table(['per connection', 'node1 (outbound) KiB', 'node2 (inbound) KiB', 'open', 'failed'], [
    ['Ferry (agent)', n((m.node1.bytesPerConnection ?? NaN) / KiB, 1), n((m.node2.bytesPerConnection ?? NaN) / KiB, 1), n(m.open), n(m.failed)],
    [`${p.id} (nginx processes)`, n((p.node1.bytesPerConnection ?? NaN) / KiB, 1), n((p.node2.bytesPerConnection ?? NaN) / KiB, 1), n(p.open), n(p.failed)],
    ['Ferry ÷ nginx', ratio(m.node1, p.node1), ratio(m.node2, p.node2), dash, dash]
  ])].join('\n')
}

export function floodLine (f: NonNullable<Results['flood']>): string {
  const q = f.quiet.load
  const u = f.flooded.load
  const head = `**Flood** (ferry-cross at ${n(q.reqPerSec)} / ${n(u.reqPerSec)} req/s achieved; node2:15008 flooded from the underlay by ${n(f.attack.attempts)} connections and ${n(f.attack.hellos)} ClientHellos): ` +
    `p50 ${ms(q.latency.p50Ms)} → ${ms(u.latency.p50Ms)} ms, p99 ${ms(q.latency.p99Ms)} → ${ms(u.latency.p99Ms)} ms (${n(f.p99Ratio, 2)}×), p99.9 ${ms(q.latency.p999Ms)} → ${ms(u.latency.p999Ms)} ms; ` +
    `failed requests ${n(u.failed)}; node2's agent at most ${n(f.node2PeakFds)} fds and ${n(f.node2PeakRssBytes / MiB, 1)} MiB RSS. ` +
    `Control, the same attack on a closed port of node2 (the agent not involved): p99 ${ms(f.control.load.latency.p99Ms)} ms (${n(f.controlP99Ratio, 2)}×).`
  const variants = Object.entries(f.variants ?? {})
  if (variants.length === 0) return head
  return [head, '', table(['attack', 'p99 ms', '× quiet', 'failed', 'node2 agent CPU ms', 'kernel SYNs admitted / dropped', 'attack attempts', 'reached'],
    [['(quiet)', ms(q.latency.p99Ms), '1.00', n(q.failed), n((f.quietNode2CpuSeconds ?? NaN) * 1000), dash, dash, dash],
      ...variants.map(([id, v]) => [id, ms(v.measured.load.latency.p99Ms), n(v.p99Ratio, 2), n(v.measured.load.failed), n(v.node2CpuSeconds * 1000),
        v.kernelSyns === null ? dash : `${n(v.kernelSyns.admitted)} / ${n(v.kernelSyns.dropped)}`, n(v.attack.attempts), n(v.attack.reached)])])].join('\n')
}

export function memoryLine (m: NonNullable<Results['memory']>): string {
  return `**Memory under the buffer budget** (a verified peer: ${n(m.peer.sessions)} sessions, ${n(m.peer.opened)} streams answered, ${n(m.peer.refused)} refused, writing to a pod that never reads): ` +
    `node2's agent RSS ${n(m.rssBeforeBytes / MiB, 1)} → peak ${n(m.rssPeakBytes / MiB, 1)} → ${n(m.rssAfterBytes / MiB, 1)} MiB (DaemonSet limit 512 MiB); ` +
    `tunnel streams reserved ${n(m.reservedBytes / MiB, 1)} and held ${n(m.heldBytes / MiB, 1)} of the ${n(m.budgetBytes / MiB)} MiB budget.`
}

function runsNote (r: Results): string {
  const count = r.runs?.count ?? 1
  return count === 1 ? 'one run' : `each figure the median of ${count} alternated runs`
}

export function renderMarkdown (r: Results): string {
  const m = r.machine
  const s = r.scale
  const p = r.policy
  return [
    `Run ${r.startedAt} → ${r.finishedAt ?? '?'}${r.quick ? ' (quick)' : ''}${r.sockmapOff === true ? ' (Ferry with --sockmap off)' : ''}; commit ${m.gitCommit}${m.gitDirty ? ' (dirty tree)' : ''}; ` +
      `${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}, HAProxy ${m.haproxy}, nginx ${m.nginx}, h2load ${m.h2load}, OpenSSL ${m.openssl}.`,
    '',
    `Ferry's agents ran ${r.meshWorkers === undefined ? 'the default number of' : String(r.meshWorkers)} data-path worker(s) in the mesh lab.`,
    '',
    `**Per path** (1 KiB keep-alive at saturation, new connection per request, bulk, idle connections; ${runsNote(r)}):`,
    '',
    mainTable(r),
    '',
    `**Fixed rates** (1 KiB, keep-alive; ${runsNote(r)}):`,
    '',
    ratesTable(r),
    ...(r.runs === undefined
      ? []
      : ['', `**Alternated runs** (${r.runs.count} of each benchmark with targets, every path in each, the paths' order rotated per run; the ratios are within each run):`, '', runsTable(r), '', ...runOrderLines(r)]),
    ...(r.workers === undefined
      ? []
      : ['', `**Workers** (ferry-cross, the agents at --workers 1, 2 and 4, one lab each, ${Math.max(0, ...workersRows(r.workers).map((w) => w.runs))} alternated runs, medians; node1's threads over the keep-alive run):`, '', workersTable(r)]),
    ...(r.manyConnections === undefined ? [] : ['', manyConnectionsLine(r.manyConnections)]),
    '',
    '**Scale** (one node, N sleeping meshed pods):',
    '',
    scaleTable(r),
    '',
    `Agent RSS growth per enrolled pod: ${s === undefined ? dash : `${n(s.bytesPerPod / 1024, 1)} KiB`} (lab, with CA, 1 worker)` +
      (r.pods?.byWorkers ?? []).map((w) => `, ${n(w.bytesPerPod / 1024, 1)} KiB (harness, no CA, ${w.workers} worker${w.workers === 1 ? '' : 's'})`).join('') + '. ' +
      `Agent start-up with ${s?.restartPods ?? dash} pods (lab restart to ready, 1 worker): ${s === undefined ? dash : `${n(s.restartMs / 1000, 2)} s`}` +
      (r.pods?.byWorkers ?? []).map((w) => { const last = w.points[w.points.length - 1]; return `; with ${last?.pods ?? dash} pods (harness, spawn to ready, ${w.workers} worker${w.workers === 1 ? '' : 's'}): ${n((last?.readyMs ?? NaN) / 1000, 2)} s` }).join('') + '.',
    `Policy change to enforcement (median of ${p?.denyMs.length ?? 0}): deny ${p === undefined ? dash : `${n(median(p.denyMs), 0)} ms`}, allow again ${p === undefined ? dash : `${n(median(p.allowMs), 0)} ms`}.`,
    ...(r.flood === undefined
      ? []
      : ['', floodLine(r.flood)]),
    ...(r.memory === undefined
      ? []
      : ['', memoryLine(r.memory)]),
    ...(r.l7 === undefined
      ? []
      : ['', ...l7Section(r.l7)]),
    '',
    '**Targets**:',
    '',
    targetsTable(r),
    ...(r.durationsSeconds === undefined ? [] : ['', `Time per benchmark: ${Object.entries(r.durationsSeconds).map(([k, v]) => `${k} ${v} s`).join(', ')}.`]),
    ...(Object.keys(r.errors).length === 0 ? [] : ['', '**Failed benchmarks**:', '', ...Object.entries(r.errors).map(([k, v]) => `- ${k}: ${v}`)]),
    ''
  ].join('\n')
}

export function renderCharts (r: Results): Record<string, string> {
  const paths = presentPaths(r)
  const bars = (f: (p: string) => number | null | undefined): Bar[] => paths.map((p) => ({ label: p, value: f(p) ?? null }))
  const out: Record<string, string> = {}
  if (r.keepalive !== undefined) {
    out['keepalive-rps.svg'] = barChart('1 KiB keep-alive requests/s (saturation)', 'req/s', bars((p) => r.keepalive?.[p]?.load.reqPerSec))
    out['keepalive-p99.svg'] = barChart('1 KiB keep-alive p99 latency at saturation', 'ms', bars((p) => r.keepalive?.[p]?.load.latency.p99Ms))
    out['cpu-per-request.svg'] = barChart('Proxy CPU per request (keep-alive)', 'µs', bars((p) => r.keepalive?.[p]?.proxyCpuUsPerRequest).filter((b) => b.value !== null))
  }
  for (const [rate, byPath] of Object.entries(r.rates ?? {})) {
    out[`rate-${rate}-p99.svg`] = barChart(`p99 latency at ${rate} req/s`, 'ms', bars((p) => byPath[p]?.load.latency.p99Ms))
  }
  if (r.newconn !== undefined) out['new-connections.svg'] = barChart('New connections/s (one request each)', 'conn/s', bars((p) => r.newconn?.[p]?.load.reqPerSec))
  if (r.bulk !== undefined) out['bulk.svg'] = barChart('Bulk transfer, one connection', 'MB/s', bars((p) => r.bulk?.[p]?.mbPerSec))
  if (r.scale !== undefined || r.pods !== undefined) {
    out['agent-rss-pods.svg'] = barChart('Agent RSS by enrolled pods', 'MiB', [
      ...(r.scale?.points ?? []).map((pt) => ({ label: `${pt.pods} pods, ${pt.workers ?? 1}w (lab)`, value: pt.agentRssBytes / MiB })),
      ...(r.pods?.byWorkers ?? []).flatMap((w) => w.points.map((pt) => ({ label: `${pt.pods} pods, ${w.workers}w (harness)`, value: pt.agentRssBytes / MiB })))
    ])
  }
  return out
}
