import { loadavg } from 'node:os'
import { sleep } from '../clock'
import { loadLab } from '../labs'
import { watchRotations } from './cert-watch'
import { cyclePolicies } from './policy-changes'
import { EventLog, type SoakEvent, type SoakEventKind } from './events'
import { SoakLoad, type LoadCounts } from './load'
import type { SoakPlan } from './plan'
import { churnPods } from './pod-churn'
import { floorOf, judgeTrend, type Trend } from './trend'

// A mixed soak on a running lab made of fixture.ts's manifests: the load (load.ts) and
// the events — policy changes, pod churn, certificate rotation watched — run together
// for the plan's duration; at the end of each window the load's counts, the events and
// each agent's resources (sampled by the caller's function: what to read, and how, is
// the caller's) make one row. The soak holds when no request and no event failed, every
// load kind was served, and no agent resource shows a growth trend (trend.ts).

export interface AgentSample {
  readonly rssBytes: number
  readonly fds: number
  /** Entries in the agent's BPF maps that are emptied explicitly: where a leak would show (src/lab/soak/sample.ts). */
  readonly mapEntries: number
  /** Entries in its LRU maps, filled by design up to their capacity (reported, not judged). */
  readonly lruEntries?: number
  readonly lruCapacity?: number
  /** V8 heap in use after a full garbage collection, when the sampler can tell. */
  readonly heapUsedAfterGcBytes?: number
}

export type SampleAgent = (node: string) => Promise<AgentSample>

export interface SoakWindow {
  /** 1-based. */
  readonly index: number
  /** Requests served per load kind in the window. */
  readonly served: Readonly<Record<string, number>>
  readonly failedRequests: number
  /** Events done per kind (failed ones in failedEvents). */
  readonly events: Readonly<Record<SoakEventKind, number>>
  readonly failedEvents: number
  /** The host's 1-minute load average at the window's end. */
  readonly load1: number
  /** Per node, at the window's end; null when the sampler failed (its error is a failure). */
  readonly agents: Readonly<Record<string, AgentSample | null>>
}

export type TrendMetric = 'rssBytes' | 'fds' | 'mapEntries' | 'heapUsedAfterGcBytes'

export interface SoakResult {
  readonly plan: SoakPlan
  readonly nodes: readonly string[]
  readonly windows: readonly SoakWindow[]
  readonly totals: LoadCounts
  readonly events: readonly SoakEvent[]
  /** Every failure's message (failed requests, failed events, failed samples, kinds never served). */
  readonly failures: readonly string[]
  readonly trends: ReadonlyArray<{ readonly node: string, readonly metric: TrendMetric, readonly trend: Trend }>
  readonly held: boolean
}

export interface SoakRunOptions {
  readonly lab: string
  readonly plan: SoakPlan
  readonly sampleAgent?: SampleAgent
  /** Progress lines for a person (a line per window). */
  readonly log?: (line: string) => void
}

const EVENT_KINDS: readonly SoakEventKind[] = ['policy', 'pod created', 'pod deleted', 'rotation']
/** What rise of each metric over a run is material (trend.ts): an absolute floor, or a fraction of the median. */
const FLOORS: Readonly<Record<TrendMetric, { absolute: number, fraction: number }>> = {
  rssBytes: { absolute: 4 << 20, fraction: 0.05 },
  fds: { absolute: 4, fraction: 0.05 },
  mapEntries: { absolute: 16, fraction: 0.05 },
  heapUsedAfterGcBytes: { absolute: 2 << 20, fraction: 0.05 }
}

export async function runMixedSoak (o: SoakRunOptions): Promise<SoakResult> {
  const { plan } = o
  const nodes = loadLab(o.lab).plan.nodes.map((n) => n.name)
  const events = new EventLog(Date.now())
  const stop = new AbortController()
  const load = SoakLoad.start(loadLab(o.lab), plan)
  const background = Promise.all([
    cyclePolicies(o.lab, plan.policyEveryMs, events, stop.signal),
    churnPods(o.lab, plan.podEveryMs, events, stop.signal),
    watchRotations(o.lab, nodes, plan.certPollMs, events, stop.signal)
  ])
  const failures: string[] = []
  const windows: SoakWindow[] = []
  const count = Math.ceil(plan.durationMs / plan.windowMs)
  let before: LoadCounts = {}
  try {
    for (let i = 1; i <= count; i++) {
      const last = i === count
      await sleep(Math.max(0, Math.min(i * plan.windowMs, plan.durationMs) - events.elapsed()))
      if (last) { stop.abort(); await background }
      const now = last ? await load.done : load.latest()
      const agents: Record<string, AgentSample | null> = {}
      for (const node of nodes) {
        agents[node] = o.sampleAgent === undefined ? null : await o.sampleAgent(node).catch((err: Error) => { failures.push(`window ${i}: sampling ${node}: ${err.message}`); return null })
      }
      const inWindow = events.between((i - 1) * plan.windowMs, last ? Infinity : i * plan.windowMs)
      const w: SoakWindow = Object.freeze({
        index: i,
        served: Object.fromEntries(plan.kinds.map((k) => [k.name, (now[k.name]?.ok ?? 0) - (before[k.name]?.ok ?? 0)])),
        failedRequests: plan.kinds.reduce((n, k) => n + (now[k.name]?.failed ?? 0) - (before[k.name]?.failed ?? 0), 0),
        events: Object.fromEntries(EVENT_KINDS.map((k) => [k, inWindow.filter((e) => e.kind === k && e.ok).length])) as Record<SoakEventKind, number>,
        failedEvents: inWindow.filter((e) => !e.ok).length,
        load1: loadavg()[0],
        agents
      })
      windows.push(w)
      before = now
      o.log?.(`window ${i}/${count}: served ${JSON.stringify(w.served)}, ${w.failedRequests} failed, events ${JSON.stringify(w.events)}, ${w.failedEvents} failed, load ${w.load1.toFixed(2)}`)
    }
  } finally {
    stop.abort()
    load.stop()
    await background
    await load.done
  }
  const totals = await load.done
  const failedRequests = plan.kinds.reduce((n, k) => n + (totals[k.name]?.failed ?? 0), 0)
  if (failedRequests > 0) failures.unshift(`${failedRequests} requests failed (the first ones' messages below)`)
  failures.push(...load.errors())
  failures.push(...events.all().filter((e) => !e.ok).map((e) => `${(e.at / 1000).toFixed(1)} s: ${e.kind}: ${e.detail}`))
  for (const k of plan.kinds) if ((totals[k.name]?.ok ?? 0) === 0) failures.push(`no ${k.name} request was served`)
  const trends = trendsOf(windows, nodes)
  const held = failures.length === 0 && trends.every((t) => !t.trend.growing)
  return Object.freeze({ plan, nodes, windows, totals, events: events.all(), failures, trends, held })
}

/** Each sampled metric of each agent over the windows after the first. */
function trendsOf (windows: readonly SoakWindow[], nodes: readonly string[]): SoakResult['trends'] {
  const out: Array<SoakResult['trends'][number]> = []
  for (const node of nodes) {
    for (const metric of Object.keys(FLOORS) as TrendMetric[]) {
      const samples = windows.slice(1).map((w) => w.agents[node]?.[metric]).filter((v): v is number => typeof v === 'number')
      if (samples.length === 0) continue
      const f = FLOORS[metric]
      out.push({ node, metric, trend: judgeTrend(samples, floorOf(samples, f.absolute, f.fraction)) })
    }
  }
  return out
}
