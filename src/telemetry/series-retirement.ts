import { UNKNOWN } from './istio-labels'

// Istio's metric series are per workload pair: a pod without a controller is its own
// workload, and pods come and go. Without retirement every series of a workload that
// ever talked through the node stays in the agent's memory (and in /metrics) for good —
// memory that grows with churn, not with what runs. A series naming a workload (source
// or destination) that is no longer in the cluster snapshot, and that no open connection
// still counts on, is marked; it is then exported in one more scrape (so its final
// counts reach Prometheus) and dropped before the next. Never scraped, a marked series
// is dropped once it has been marked for RETIRE_UNSCRAPED_MS.

/** How long a series of a gone workload waits for a scrape before it is dropped all the same. */
export const RETIRE_UNSCRAPED_MS = 10 * 60_000

/** Whether the cluster has a workload of this name in this namespace. */
export type LiveWorkloads = (namespace: string, workload: string) => boolean

/** The part of a series retirement reads and writes. */
export interface RetirableSeries {
  readonly labels: Readonly<Record<string, string>>
  /** When it was found naming a gone workload: the scrape count then, and the time. */
  gone?: { readonly scrape: number, readonly atMs: number } | undefined
}

/** Whether `labels` name a source or destination workload the cluster no longer has. */
export function namesGoneWorkload (labels: Readonly<Record<string, string>>, live: LiveWorkloads): boolean {
  for (const side of ['source', 'destination'] as const) {
    const workload = labels[`${side}_workload`]
    const namespace = labels[`${side}_workload_namespace`]
    if (workload === undefined || namespace === undefined || workload === UNKNOWN || namespace === UNKNOWN) continue
    if (!live(namespace, workload)) return true
  }
  return false
}

/** The workloads of a snapshot's pods, as a LiveWorkloads. */
export function liveWorkloadsOf (pods: Iterable<{ readonly namespace: string, readonly workload: string }>): LiveWorkloads {
  const set = new Set<string>()
  for (const p of pods) set.add(`${p.namespace}\0${p.workload}`)
  return (namespace, workload) => set.has(`${namespace}\0${workload}`)
}

/** One holder's series (a Map by key) and its scrape count. */
export class SeriesRetirement<S extends RetirableSeries> {
  #scrapes = 0

  constructor (private readonly series: Map<string, S>, private readonly now: () => number = Date.now) {}

  /**
   * On a new cluster snapshot: marks the series naming a gone workload (not `busy`:
   * an open connection still counts on it), unmarks those whose workload is back, and
   * drops — returning them — those marked RETIRE_UNSCRAPED_MS ago or more.
   */
  mark (live: LiveWorkloads, busy: (s: S) => boolean = () => false): S[] {
    const now = this.now()
    const dropped: S[] = []
    for (const [key, s] of this.series) {
      if (!namesGoneWorkload(s.labels, live) || busy(s)) { s.gone = undefined; continue }
      s.gone ??= { scrape: this.#scrapes, atMs: now }
      if (now - s.gone.atMs >= RETIRE_UNSCRAPED_MS) { this.series.delete(key); dropped.push(s) }
    }
    return dropped
  }

  /**
   * A scrape begins (call once per scrape, before the values are read): drops — returning
   * them — the series marked before the previous scrape began, which exported their last
   * values then.
   */
  scrape (): S[] {
    const dropped: S[] = []
    for (const [key, s] of this.series) {
      if (s.gone !== undefined && s.gone.scrape < this.#scrapes) { this.series.delete(key); dropped.push(s) }
    }
    this.#scrapes++
    return dropped
  }
}
