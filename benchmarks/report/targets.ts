import { alternatedFigures, type AlternatedFigure } from './alternated'
import type { Results } from './results'
import { BOTH_CORES_MIN_PEAK, bothCores } from './workers'

// The targets, from one run of the suite on one machine. The figures compared with the
// peers are ratios (or differences) within one alternated run, and the target is judged
// on their median over the runs; each run's value is kept beside it. A figure that was
// not measured gives null.

export interface TargetCheck {
  readonly target: string
  /** The measured value, as shown (the median over the runs where there are runs). */
  readonly value: string
  /** measured / goal in the target's own direction: ≥ 1 means met. */
  readonly score: number | null
  readonly met: boolean | null
  /** Each alternated run's value, as shown (absent for figures measured once). */
  readonly runs?: readonly string[]
  /** In how many of the runs the target was met. */
  readonly metInRuns?: number
}

const MiB = 2 ** 20

/** Higher is better: value / goal. Lower is better: goal / value, and any value ≤ 0 beats a positive goal. */
function scoreOf (value: number, goal: number, higherIsBetter: boolean): number {
  if (higherIsBetter) return value / goal
  return value <= 0 ? Infinity : goal / value
}

function check (target: string, value: number | null | undefined, goal: number, higherIsBetter: boolean, show: (v: number) => string): TargetCheck {
  if (value === null || value === undefined || !Number.isFinite(value)) return { target, value: 'not measured', score: null, met: null }
  return { target, value: show(value), score: scoreOf(value, goal, higherIsBetter), met: higherIsBetter ? value >= goal : value <= goal }
}

/** A target judged on the median of an alternated figure, with each run's value. */
function checkRuns (target: string, f: AlternatedFigure | undefined, goal: number, higherIsBetter: boolean): TargetCheck {
  if (f === undefined) return { target, value: 'not measured', score: null, met: null }
  const base = check(target, f.median, goal, higherIsBetter, f.format)
  if (base.met === null) return base
  const measured = f.values.filter((v): v is number => v !== null)
  return {
    ...base,
    runs: f.values.map((v) => v === null ? '–' : f.format(v)),
    metInRuns: measured.filter((v) => higherIsBetter ? v >= goal : v <= goal).length
  }
}

const mib = (v: number): string => `${(v / MiB).toFixed(1)} MiB`
const kib = (v: number): string => `${(v / 1024).toFixed(1)} KiB`

/** Every one of the connections held, and both agents' peak RSS under half the DaemonSet's limit. */
function manyConnectionsCheck (many: Results['manyConnections']): TargetCheck {
  const target = `${many?.connections ?? 10000} cross-node connections all held, each agent's peak RSS < 256 MiB (half the DaemonSet's 512 MiB limit)`
  if (many === undefined) return { target, value: 'not measured', score: null, met: null }
  const peak = Math.max(many.node1.rssPeakBytes, many.node2.rssPeakBytes)
  return {
    target,
    value: `${many.open} held, ${many.failed} failed; peak ${mib(peak)}`,
    score: Math.min(many.open / many.connections, scoreOf(peak, 256 * MiB, false)),
    met: many.failed === 0 && many.open === many.connections && peak < 256 * MiB
  }
}

export function evaluateTargets (r: Results): TargetCheck[] {
  const figures = new Map(alternatedFigures(r).map((f) => [f.id, f]))
  const rates = [...figures.keys()].filter((k) => k.startsWith('p99-over:')).map((k) => k.slice('p99-over:'.length))
  const scaleAt = (pods: number, workers: number): number | undefined => r.scale?.points.find((p) => p.pods === pods && (p.workers ?? 1) === workers)?.agentRssBytes
  const podsAt = (pods: number, workers: number): number | undefined => r.pods?.byWorkers?.find((w) => w.workers === workers)?.points.find((p) => p.pods === pods)?.agentRssBytes
  const podsGrowth = (workers: number): number | undefined => r.pods?.byWorkers?.find((w) => w.workers === workers)?.bytesPerPod
  const many = r.manyConnections
  const twoWorkers = bothCores(r.workers)
  const out: TargetCheck[] = [
    checkRuns('cross-node keep-alive req/s ≥ 1.1× the better peer', figures.get('keepalive-rps-ratio'), 1.1, true),
    checkRuns('cross-node proxy CPU per request ≤ 0.9× the better peer', figures.get('keepalive-cpu-ratio'), 0.9, false),
    checkRuns('cross-node proxy CPU ≤ 60 µs/request (ztunnel: 0.06 vCPU per 1k req/s)', figures.get('keepalive-cpu:ferry-cross'), 60, false),
    checkRuns('new connections/s ≥ 3× HAProxy', figures.get('newconn-ratio'), 3, true),
    checkRuns('new connections/s ≥ 5× HAProxy (the aim)', figures.get('newconn-ratio'), 5, true),
    ...rates.map((rate) => checkRuns(`p99 at ${rate} req/s ≤ HAProxy + 0.3 ms`, figures.get(`p99-over:${rate}`), 0.3, false)),
    checkRuns('bulk MB/s ≥ 0.85× HAProxy', figures.get('bulk-ratio'), 0.85, true),
    checkRuns('same-node req/s ≥ 0.7× direct', figures.get('same-node-ratio'), 0.7, true),
    check('agent RSS with 100 pods, 1 worker < 100 MiB (lab, with CA)', scaleAt(100, 1), 100 * MiB, false, mib),
    check('agent RSS with 100 pods, 4 workers < 160 MiB (lab, with CA)', scaleAt(100, 4), 160 * MiB, false, mib),
    check('agent RSS with 100 pods, 1 worker < 100 MiB (harness, no CA)', podsAt(100, 1), 100 * MiB, false, mib),
    check('agent RSS with 100 pods, 4 workers < 160 MiB (harness, no CA)', podsAt(100, 4), 160 * MiB, false, mib),
    check('agent RSS growth per enrolled pod < 100 KiB (lab, with CA, 1 worker)', r.scale?.bytesPerPod, 100 * 1024, false, kib),
    ...(r.pods?.byWorkers ?? []).map((w) => check(`agent RSS growth per enrolled pod < 100 KiB (harness, ${w.workers} worker${w.workers === 1 ? '' : 's'}, ${w.points[0]?.pods ?? '?'} → ${w.points[w.points.length - 1]?.pods ?? '?'} pods)`, podsGrowth(w.workers), 100 * 1024, false, kib)),
    manyConnectionsCheck(many),
    {
      target: `with 2 workers node1's agent uses both cores: its two busiest threads are event loops other than main, and its threads ran > ${BOTH_CORES_MIN_PEAK} cores at once in some 100 ms window`,
      value: twoWorkers === null ? 'not measured' : twoWorkers.summary,
      score: null,
      met: twoWorkers === null ? null : twoWorkers.met
    },
    check('cross-node p99 under a flood of node2:15008 ≤ 2× p99 without', r.flood?.p99Ratio, 2, false, (v) => `${v.toFixed(2)}×`),
    check('agent RSS with a verified peer filling the buffer budget < 384 MiB (¾ of the DaemonSet\'s 512 MiB limit)', r.memory?.rssPeakBytes, 384 * MiB, false, mib)
  ]
  return out
}
