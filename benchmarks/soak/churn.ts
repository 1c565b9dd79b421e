import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import type { AgentResources } from '../../src/lab/agent-resources'
import type { ResourceDrift } from '../../src/lab/churn/drift'
import { runChurn, type ChurnResult } from '../../src/lab/churn/run'
import { CHURN_EXAMPLE_DIR, type SurvivorReport } from '../../src/lab/churn/survivors'
import { Lab } from '../lib/lab'
import type { SoakOptions } from './main'

// `npm run soak -- --scenario churn [--pods 1000] [--wave 100]`: churn without leaks on a
// one-node lab of examples/churn/churn.yaml (src/lab/churn/run.ts does the run). The
// surviving pods' clients hold 4 keep-alive connections each to the Service `backend`
// and send requests on them throughout; `--pods` pods are created and deleted in waves
// of `--wave` beside them, while the same clients also call the churned pods' Service
// (reported, not judged). Afterwards every resource of the agent must be back within
// 5 % of the baseline taken after a warm-up wave, and no request or connection of a
// surviving pod may have failed. Prints (and with --out writes) a Markdown report.

export const CHURN_DEFAULTS = Object.freeze({ pods: 1000, wave: 100 })
const TOLERANCE = 0.05
const SETTLE_MS = 5000
const READS = 6
const WAVE_TIMEOUT_MS = 600_000
/** Bound on the clients: a run longer than this has failed anyway. */
const MAX_SECONDS = 4 * 3600

export async function runChurnSoak (o: SoakOptions): Promise<boolean> {
  const pods = o.pods ?? CHURN_DEFAULTS.pods
  const wave = o.wave ?? CHURN_DEFAULTS.wave
  const name = `schurn${process.pid}`.slice(0, 15)
  const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }
  const down = (): void => { void Lab.down(name).finally(() => process.exit(130)) }
  process.once('SIGINT', down)
  process.once('SIGTERM', down)
  try {
    log(`lab ${name} up (${join(CHURN_EXAMPLE_DIR, 'churn.yaml')})`)
    await Lab.up(name, join(CHURN_EXAMPLE_DIR, 'churn.yaml'), { mesh: true })
    const r = await runChurn({
      lab: name,
      node: 'node1',
      namespace: 'churn',
      pods,
      wave,
      tolerance: TOLERANCE,
      settleMs: SETTLE_MS,
      reads: READS,
      waveTimeoutMs: WAVE_TIMEOUT_MS,
      survivors: { clients: ['churn/client-0', 'churn/client-1'], url: 'http://backend:8080/', connections: 4, pauseMs: 100, maxRequests: 10_000_000 },
      churnTraffic: { url: 'http://churn:8080/', pauseMs: 200 },
      maxSeconds: MAX_SECONDS,
      say: log
    })
    const report = churnReport(r)
    process.stdout.write(report)
    if (o.out !== undefined) writeFileSync(o.out, report)
    return r.failures.length === 0
  } finally {
    process.off('SIGINT', down)
    process.off('SIGTERM', down)
    await Lab.down(name)
  }
}

/** The run as Markdown: verdict, waves, each resource against its baseline, the survivors' traffic. */
export function churnReport (r: ChurnResult): string {
  const lines = [
    `# Churn without leaks: ${r.failures.length === 0 ? 'held' : 'FAILED'}`,
    '',
    `${r.churned} pods created and deleted in ${r.waves.length} waves of ${r.waves[0]?.pods ?? 0} (after a warm-up wave) in ${r.seconds.toFixed(0)} s; ` +
      `1-minute load average ${r.load1.min.toFixed(1)}–${r.load1.max.toFixed(1)} (mean ${r.load1.mean.toFixed(1)}) on ${cpus().length} cores.`,
    '',
    ...(r.failures.length === 0 ? [] : ['Failures:', '', ...r.failures.map((f) => `- ${f}`), '']),
    '| resource | baseline | with a wave enrolled | after | allowed ± | |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...r.drifts.map((d) => driftRow(d, r.peak)),
    '',
    `fds by kind, baseline → after: ${Object.keys({ ...r.baseline.fdKinds, ...r.after.fdKinds }).sort().map((k) => `${k} ${r.baseline.fdKinds[k] ?? 0}→${r.after.fdKinds[k] ?? 0}`).join(', ')}`,
    '',
    '| wave | pods | apply ms | delete of the wave before, ms | load (1 min) |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...r.waves.map((w) => `| ${w.index} | ${w.pods} | ${w.applyMs} | ${w.deleteMs} | ${w.load1.toFixed(2)} |`),
    '',
    'Surviving pods (keep-alive connections to `backend`, judged):',
    '',
    ...trafficTable(r.survivors),
    '',
    'The same clients to the churned pods (`churn`, a new connection per request, not judged):',
    '',
    ...trafficTable(r.churnTraffic),
    ''
  ]
  return lines.join('\n')
}

function driftRow (d: ResourceDrift, peak: AgentResources): string {
  const key = d.resource.startsWith('map ') ? d.resource.slice(4) : d.resource
  const p = d.resource.startsWith('map ') ? peak.mapEntries[key] : (peak as unknown as Record<string, number | null>)[key]
  const fmt = (v: number | null | undefined): string => v === null || v === undefined || Number.isNaN(v) ? '?' : key.endsWith('Bytes') ? `${(v / 2 ** 20).toFixed(1)} MiB` : String(v)
  const verdict = d.reportedOnly ? 'reported' : d.ok ? 'ok' : '**leak**'
  return `| ${d.resource} | ${fmt(d.baseline)} | ${fmt(p)} | ${fmt(d.after)} | ${key.endsWith('Bytes') ? fmt(d.allowed) : d.allowed.toFixed(1)} | ${verdict} |`
}

function trafficTable (reports: readonly SurvivorReport[]): string[] {
  return [
    '| pod | requests | ok | failed | connections | closed during the run | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...reports.map((s) => `| ${s.pod} | ${s.requests} | ${s.ok} | ${s.failed} | ${s.connections} | ${s.connectionsClosed} | ${JSON.stringify(s.errors)} |`)
  ]
}
