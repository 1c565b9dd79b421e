import type { SoakResult, TrendMetric } from './run'

// A soak's result as Markdown: a row per window (requests served per kind, failures,
// events, the host's load, each agent's resources), the totals, each resource's trend
// with its verdict, and the failures. `npm run soak` prints it and writes it with --out.

const MIB = 1 << 20
type Column = TrendMetric | 'lruEntries'
const METRIC_NAMES: Readonly<Record<Column, string>> = { rssBytes: 'RSS (MiB)', fds: 'fds', mapEntries: 'map entries', heapUsedAfterGcBytes: 'heap after GC (MiB)', lruEntries: 'LRU entries' }

export function renderSoakReport (r: SoakResult): string {
  const lines: string[] = []
  const kinds = r.plan.kinds.map((k) => k.name)
  const sampled = (m: Column): boolean => r.windows.some((w) => r.nodes.some((n) => w.agents[n]?.[m] !== undefined))
  const metrics = (Object.keys(METRIC_NAMES) as Column[]).filter(sampled)
  const head = ['end', ...kinds, 'failures', 'policy changes', 'pods created / deleted', 'rotations', 'load avg',
    ...r.nodes.flatMap((n) => metrics.map((m) => `${n} ${METRIC_NAMES[m]}`))]
  lines.push(row(head), row(head.map((_, i) => i === 0 ? '---' : '---:')))
  for (const w of r.windows) {
    const end = Math.min(w.index * r.plan.windowMs, r.plan.durationMs) / 1000
    lines.push(row([`${Math.floor(end / 60)}:${String(end % 60).padStart(2, '0')}`, ...kinds.map((k) => String(w.served[k])),
      String(w.failedRequests + w.failedEvents), String(w.events.policy), `${w.events['pod created']} / ${w.events['pod deleted']}`,
      String(w.events.rotation), w.load1.toFixed(2),
      ...r.nodes.flatMap((n) => metrics.map((m) => value(m, w.agents[n]?.[m])))]))
  }
  const ok = kinds.map((k) => `${k} ${r.totals[k]?.ok ?? 0}`).join(', ')
  const failed = kinds.reduce((n, k) => n + (r.totals[k]?.failed ?? 0), 0)
  const kept = r.totals[r.plan.kinds.find((k) => k.mode === 'keepalive')?.name ?? '']
  lines.push('', `Requests served: ${ok}; failed: ${failed}${kept === undefined ? '' : `; keep-alive requests on a reused connection: ${kept.reused}`}.`)
  const count = (kind: string): number => r.events.filter((e) => e.kind === kind && e.ok).length
  lines.push(`Events: ${count('policy')} policy changes in force on every agent, ${count('pod created')} pods created and ${count('pod deleted')} deleted, ${count('rotation')} certificate rotations seen; ${r.events.filter((e) => !e.ok).length} failed.`)
  if (r.trends.length > 0) {
    lines.push('', row(['agent', 'resource', 'samples', 'slope / window', 'std error', 'rise over the run', 'material rise', 'verdict']), row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---']))
    for (const { node, metric, trend: t } of r.trends) {
      lines.push(row([node, METRIC_NAMES[metric], String(t.n), value(metric, t.slope, 2), Number.isFinite(t.stdError) ? value(metric, t.stdError, 2) : '—',
        value(metric, t.rise, 2), value(metric, t.floor, 2), t.growing ? '**growing**' : 'no growth trend']))
    }
    const capacity = r.windows.flatMap((w) => r.nodes.map((n) => w.agents[n]?.lruCapacity)).find((c) => c !== undefined)
    if (capacity !== undefined) lines.push('', `Map entries count the maps whose entries are removed (by the agent, or by the kernel when a socket closes); LRU entries count the LRU hashes, which keep a closed connection's entry until it is evicted: they rise with the connections made, up to their capacity (${capacity} entries per agent), and are not judged.`)
    lines.push('', 'A resource grows when its least-squares slope over the windows after the first is above twice its standard error and the fitted line rises by more than the material rise (the larger of a fixed floor — 4 MiB RSS, 2 MiB heap, 4 fds, 16 map entries — and 5 % of the median).')
  }
  lines.push('', r.held ? 'Verdict: held — no failed request or event, and no growth trend.' : 'Verdict: **did not hold**.')
  if (r.failures.length > 0) lines.push('', 'Failures:', ...r.failures.slice(0, 50).map((f) => `- ${f}`))
  return lines.join('\n') + '\n'
}

function row (cells: readonly string[]): string { return `| ${cells.join(' | ')} |` }

function value (metric: Column, v: number | undefined, digits?: number): string {
  if (v === undefined) return '—'
  const bytes = metric === 'rssBytes' || metric === 'heapUsedAfterGcBytes'
  return bytes ? (v / MIB).toFixed(digits ?? 1) : v.toFixed(digits ?? 0)
}
