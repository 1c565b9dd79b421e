import type { LabProbe, ProbeKind } from '../manifest/spec'
import type { ProbeOutcome } from './probe-runners'

// One probe of one container run, with the kubelet's timing and thresholds
// (pkg/kubelet/prober/worker.go):
//   - nothing is probed before initialDelaySeconds after the container started, nor
//     while the worker is gated (liveness and readiness wait for the startup probe);
//   - then a probe every periodSeconds (the next one right away if a probe took longer);
//   - the published result flips only after successThreshold successes or
//     failureThreshold failures in a row; it starts as failure for readiness (a pod is
//     not ready until proven), success for liveness, unknown for startup;
//   - a startup probe stops once it succeeded; a liveness or startup probe stops once it
//     failed (the container is restarted, and a new run gets new workers).
// Time is injected, so the thresholds are unit-tested without waiting.

export type ProbeState = 'unknown' | 'success' | 'failure'

export interface Timers {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const REAL_TIMERS: Timers = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => { clearTimeout(h as NodeJS.Timeout) }
}

export interface ProbeWorkerOptions {
  readonly kind: ProbeKind
  readonly probe: LabProbe
  /** When the container's current run started (ms, by timers.now). */
  readonly startedAt: number
  /** Runs one probe (it bounds itself by the probe's timeout). */
  readonly run: () => Promise<ProbeOutcome>
  /** False while the probe must wait (liveness and readiness before the startup probe succeeded). */
  readonly enabled?: () => boolean
  /** Every probe's outcome, and the thresholded state after it. */
  readonly onResult: (outcome: ProbeOutcome, state: ProbeState, changed: boolean) => void
  readonly timers?: Timers
}

export const INITIAL_STATE: Readonly<Record<ProbeKind, ProbeState>> = { readiness: 'failure', liveness: 'success', startup: 'unknown' }

export class ProbeWorker {
  state: ProbeState
  private lastOk: boolean | null = null
  private run = 0
  private timer: unknown = null
  private stopped = false
  private readonly timers: Timers

  constructor (private readonly opts: ProbeWorkerOptions) {
    this.state = INITIAL_STATE[opts.kind]
    this.timers = opts.timers ?? REAL_TIMERS
  }

  start (): void {
    this.schedule(Math.max(0, this.opts.startedAt + this.opts.probe.initialDelaySeconds * 1000 - this.timers.now()))
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== null) this.timers.clearTimeout(this.timer)
    this.timer = null
  }

  /** Applies one outcome to the thresholds; returns whether the published state changed. Exposed for tests. */
  record (outcome: ProbeOutcome): boolean {
    this.run = outcome.ok === this.lastOk ? this.run + 1 : 1
    this.lastOk = outcome.ok
    const p = this.opts.probe
    const next: ProbeState = outcome.ok ? (this.run >= p.successThreshold ? 'success' : this.state) : (this.run >= p.failureThreshold ? 'failure' : this.state)
    const changed = next !== this.state
    this.state = next
    return changed
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    this.timer = this.timers.setTimeout(() => { void this.tick() }, ms)
  }

  private async tick (): Promise<void> {
    this.timer = null
    if (this.stopped) return
    const period = this.opts.probe.periodSeconds * 1000
    if (this.opts.enabled !== undefined && !this.opts.enabled()) { this.schedule(period); return }
    const began = this.timers.now()
    const outcome = await this.opts.run()
    if (this.stopped) return
    const changed = this.record(outcome)
    this.opts.onResult(outcome, this.state, changed)
    const kind = this.opts.kind
    if ((kind === 'startup' && this.state === 'success') || (kind !== 'readiness' && this.state === 'failure')) return
    this.schedule(Math.max(0, began + period - this.timers.now()))
  }
}
