import type { Results } from './results'

// The targets, as ratios from one run on one machine. Each is evaluated from
// the results; a figure that was not measured gives null.

export interface TargetCheck {
  readonly target: string
  /** The measured value, as shown. */
  readonly value: string
  /** measured / goal in the target's own direction: ≥ 1 means met. */
  readonly score: number | null
  readonly met: boolean | null
}

const MiB = 2 ** 20

function check (target: string, value: number | null | undefined, goal: number, higherIsBetter: boolean, show: (v: number) => string): TargetCheck {
  if (value === null || value === undefined || !Number.isFinite(value)) return { target, value: 'not measured', score: null, met: null }
  const score = higherIsBetter ? value / goal : (value === 0 ? Infinity : goal / value)
  return { target, value: show(value), score, met: higherIsBetter ? value >= goal : value <= goal }
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b

export function evaluateTargets (r: Results): TargetCheck[] {
  const ka = r.keepalive
  const out: TargetCheck[] = [
    check('cross-node keep-alive req/s ≥ 1.0× HAProxy', ratio(ka?.['ferry-cross']?.load.reqPerSec, ka?.['haproxy-cross']?.load.reqPerSec), 1.0, true, (v) => `${v.toFixed(2)}×`),
    check('cross-node proxy CPU per request ≤ HAProxy', ratio(ka?.['ferry-cross']?.proxyCpuUsPerRequest, ka?.['haproxy-cross']?.proxyCpuUsPerRequest), 1.0, false, (v) => `${v.toFixed(2)}×`),
    check('cross-node proxy CPU ≤ 60 µs/request (ztunnel: 0.06 vCPU per 1k req/s)', ka?.['ferry-cross']?.proxyCpuUsPerRequest, 60, false, (v) => `${v.toFixed(1)} µs`),
    check('new connections/s ≥ 5× HAProxy', ratio(r.newconn?.['ferry-cross']?.load.reqPerSec, r.newconn?.['haproxy-cross']?.load.reqPerSec), 5, true, (v) => `${v.toFixed(2)}×`)
  ]
  for (const [rate, byPath] of Object.entries(r.rates ?? {})) {
    const f = byPath['ferry-cross']?.load.latency.p99Ms
    const h = byPath['haproxy-cross']?.load.latency.p99Ms
    const over = f === undefined || h === undefined ? null : f - h
    // Goal: at most 0.3 ms over; scored as 0.3 / max(over, 0.3-equivalent) by the shared rule.
    out.push({
      target: `p99 at ${rate} req/s ≤ HAProxy + 0.3 ms`,
      value: over === null ? 'not measured' : `${over >= 0 ? '+' : ''}${over.toFixed(3)} ms`,
      score: over === null ? null : (over <= 0 ? Infinity : 0.3 / over),
      met: over === null ? null : over <= 0.3
    })
  }
  out.push(
    check('bulk MB/s ≥ 0.85× HAProxy', ratio(r.bulk?.['ferry-cross']?.mbPerSec, r.bulk?.['haproxy-cross']?.mbPerSec), 0.85, true, (v) => `${v.toFixed(2)}×`),
    check('agent RSS with 100 pods < 100 MiB', r.scale?.points.find((p) => p.pods === 100)?.agentRssBytes, 100 * MiB, false, (v) => `${(v / MiB).toFixed(1)} MiB`),
    check('agent RSS growth per enrolled pod < 100 KiB (lab, with CA)', r.scale?.bytesPerPod, 100 * 1024, false, (v) => `${(v / 1024).toFixed(1)} KiB`),
    check('agent RSS growth per enrolled pod < 100 KiB (harness, 10 → 1,000 pods)', r.pods?.bytesPerPod, 100 * 1024, false, (v) => `${(v / 1024).toFixed(1)} KiB`),
    check('same-node req/s ≥ 0.7× direct', ratio(ka?.['ferry-same']?.load.reqPerSec, ka?.['direct-same']?.load.reqPerSec), 0.7, true, (v) => `${v.toFixed(2)}×`),
    check('cross-node p99 under a flood of node2:15008 ≤ 2× p99 without', r.flood?.p99Ratio, 2, false, (v) => `${v.toFixed(2)}×`),
    check('agent RSS with a verified peer filling the buffer budget < 384 MiB (¾ of the DaemonSet\'s 512 MiB limit)', r.memory?.rssPeakBytes, 384 * MiB, false, (v) => `${(v / MiB).toFixed(1)} MiB`)
  )
  return out
}
