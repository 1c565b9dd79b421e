import type { ChildProcess } from 'node:child_process'
import type { Logger } from '../../telemetry/logger'
import { killCgroup, signalCgroup, waitEmpty } from '../cgroup'
import { sleep } from '../clock'
import { PROBE_KINDS, type LabContainer, type LabPod, type LabProbe, type ProbeKind } from '../manifest/spec'
import { CONTAINER_CREATING, type ContainerState, type ObservedContainer } from '../pod-status'
import { isRunning, procStartTime } from '../proc'
import { spawnContainer } from '../spawn'
import { containerId, type PlanContainer, type PlanPod } from '../topology'
import { runProbe } from './probe-runners'
import { ProbeWorker, type Timers } from './probe-worker'
import type { ContainerRecord } from './records'

// One container of a pod, as the kubelet watches it: which process is its current run
// (the one the lab started, then each one this kubelet restarted), whether that run
// still lives, the run's probe workers, and the restart when a liveness or startup
// probe has failed its threshold: SIGTERM, the pod's grace period, SIGKILL (the
// container's own cgroup with --kubernetes-api, else its process group), then the same
// argv and environment again — unless the pod's restartPolicy is Never.

const KILL_WAIT_MS = 5000
const EXIT_POLL_MS = 50

interface Run {
  readonly pid: number
  readonly startTime: number | null
  readonly startedAt: string
  readonly startedAtMs: number
  /** Set when this kubelet started the run: its exit status is known. */
  readonly child: ChildProcess | null
  exit: { code: number | null, signal: NodeJS.Signals | null } | null
}

export interface ContainerContext {
  readonly log: Logger
  /** A probe's published state changed, or the container's run did: publish the pod's status soon. */
  readonly changed: () => void
  /** The run's record changed: persist the kubelet's records. */
  readonly recorded: (record: ContainerRecord) => void
  readonly timers?: Timers
}

export class ContainerWorker {
  private run: Run | null = null
  private ended: ContainerState | null
  private lastState: ContainerState | null
  private restartCount: number
  private restarting = false
  private stopped = false
  private workers: Partial<Record<ProbeKind, ProbeWorker>> = {}
  private readonly probes: Partial<Record<ProbeKind, LabProbe>>
  private readonly label: { pod: string, container: string }

  constructor (private readonly ctx: ContainerContext, private readonly pod: PlanPod, private readonly specPod: LabPod,
    private readonly plan: PlanContainer, private readonly spec: LabContainer, record: ContainerRecord | null) {
    this.probes = spec.probes ?? {}
    this.label = { pod: `${pod.namespace}/${pod.name}`, container: plan.name }
    this.restartCount = record?.restartCount ?? 0
    this.lastState = record?.lastState ?? null
    this.ended = record?.ended ?? null
    if (record !== null && record.ended == null && isRunning(record.pid, record.startTime)) {
      this.begin({ pid: record.pid, startTime: record.startTime, startedAt: record.startedAt, startedAtMs: Date.parse(record.startedAt), child: null, exit: null })
    }
  }

  /** Looks at the container's process: adopts the first run the lab started (`labPid`), notices a run that ended. */
  observe (labPid: number | undefined): void {
    if (this.stopped || this.restarting) return
    if (this.run === null) {
      if (this.ended !== null || labPid === undefined) return
      const now = new Date()
      const run: Run = { pid: labPid, startTime: procStartTime(labPid), startedAt: now.toISOString(), startedAtMs: now.getTime(), child: null, exit: null }
      if (isRunning(labPid)) {
        this.begin(run)
      } else {
        // Started by the lab and gone before this kubelet saw it run.
        this.ended = this.terminated(run, 'Error')
      }
      this.persist()
      this.ctx.changed()
      return
    }
    if (isRunning(this.run.pid, this.run.startTime)) return
    // It ended on its own: the lab's kubelet leaves it stopped (not Ready), as it found it.
    this.ended = this.terminated(this.run, 'Error')
    this.ctx.log.info({ ...this.label, event: 'exited', detail: JSON.stringify(this.ended) }, 'container exited')
    this.endRun()
    this.persist()
    this.ctx.changed()
  }

  get started (): boolean {
    if (this.run === null) return false
    const startup = this.workers.startup
    return startup === undefined || startup.state === 'success'
  }

  get ready (): boolean {
    if (!this.started) return false
    const readiness = this.workers.readiness
    return readiness === undefined || readiness.state === 'success'
  }

  /** What the pod's status says of this container. */
  observed (): ObservedContainer {
    const run = this.run
    const state: ContainerState = run !== null && !this.restarting
      ? { running: { startedAt: run.startedAt } }
      : this.ended ?? CONTAINER_CREATING
    return {
      name: this.plan.name,
      state,
      lastState: this.lastState,
      started: !this.restarting && this.started,
      ready: !this.restarting && this.ready,
      restartCount: this.restartCount,
      containerID: run === null && this.ended === null && this.lastState === null ? null : `containerd://${containerId(this.pod.uid, this.plan.name)}`
    }
  }

  /** The pod is gone from this node: stop probing (its processes are the runtime's to stop). */
  stop (): void {
    this.stopped = true
    this.stopWorkers()
  }

  private begin (run: Run): void {
    this.run = run
    this.ended = null
    run.child?.once('exit', (code, signal) => { run.exit = { code, signal } })
    const started = (): boolean => this.started
    for (const kind of PROBE_KINDS) {
      const probe = this.probes[kind]
      if (probe === undefined) continue
      const worker = new ProbeWorker({
        kind,
        probe,
        startedAt: run.startedAtMs,
        timers: this.ctx.timers,
        enabled: kind === 'startup' ? undefined : started,
        run: async () => await runProbe(probe.handler, { pod: this.pod, container: this.plan, ports: this.spec.ports }, probe.timeoutSeconds * 1000),
        onResult: (outcome, state, changed) => {
          this.ctx.log.info({ ...this.label, probe: kind, result: outcome.ok ? 'success' : 'failure', state, detail: outcome.detail }, 'probe')
          if (!changed) return
          if (kind !== 'readiness' && state === 'failure') void this.restart(kind, outcome.detail)
          this.ctx.changed()
        }
      })
      this.workers[kind] = worker
    }
    for (const w of Object.values(this.workers)) w.start()
  }

  private endRun (): void {
    this.stopWorkers()
    this.run = null
  }

  private stopWorkers (): void {
    for (const w of Object.values(this.workers)) w.stop()
    this.workers = {}
  }

  private async restart (kind: ProbeKind, detail: string): Promise<void> {
    const run = this.run
    if (run === null || this.restarting || this.stopped) return
    this.restarting = true
    this.stopWorkers()
    try {
      this.ctx.log.info({ ...this.label, probe: kind, event: 'killing', detail: `${kind} probe failed ${this.probes[kind]?.failureThreshold ?? 1} time(s): ${detail}` }, 'container failed its probe; killing it')
      const how = await this.kill(run)
      this.lastState = this.terminated(run, 'Error', how)
      this.run = null
      if (this.stopped) return
      if (this.specPod.restartPolicy === 'Never') {
        this.ended = this.lastState
        this.ctx.log.info({ ...this.label, event: 'not restarted', detail: 'restartPolicy Never' }, 'container stopped')
        return
      }
      const child = spawnContainer(this.pod, this.plan)
      const pid = child.pid
      if (pid === undefined) {
        this.ended = { waiting: { reason: 'CreateContainerError', message: `cannot start ${this.plan.argv.join(' ')}` } }
        return
      }
      this.restartCount++
      const now = new Date()
      this.begin({ pid, startTime: procStartTime(pid), startedAt: now.toISOString(), startedAtMs: now.getTime(), child, exit: null })
      this.ctx.log.info({ ...this.label, event: 'restarted', pid, restartCount: this.restartCount }, 'container restarted')
    } finally {
      this.restarting = false
      this.persist()
      this.ctx.changed()
    }
  }

  /** Stops a run: SIGTERM, the pod's grace period, then SIGKILL. Returns the signal that ended it. */
  private async kill (run: Run): Promise<'SIGTERM' | 'SIGKILL'> {
    const graceMs = this.pod.graceSeconds * 1000
    const own = this.plan.cgroup
    if (own != null) {
      signalCgroup(own, 'SIGTERM')
      if (await waitEmpty(own, graceMs)) return 'SIGTERM'
      await killCgroup(own, KILL_WAIT_MS)
      return 'SIGKILL'
    }
    // The container's processes share the pod's cgroup: its process group (the lab starts
    // each container as a session leader).
    const group = (signal: NodeJS.Signals): void => { try { process.kill(-run.pid, signal) } catch { /* gone */ } }
    group('SIGTERM')
    if (await this.exited(run, graceMs)) return 'SIGTERM'
    group('SIGKILL')
    await this.exited(run, KILL_WAIT_MS)
    return 'SIGKILL'
  }

  private async exited (run: Run, ms: number): Promise<boolean> {
    for (let waited = 0; waited <= ms; waited += EXIT_POLL_MS) {
      if (!isRunning(run.pid, run.startTime)) return true
      await sleep(EXIT_POLL_MS)
    }
    return !isRunning(run.pid, run.startTime)
  }

  /**
   * How a run ended. Its exit code is known when this kubelet started it; a run the lab
   * started is not this process's child, so its code is what the signal that stopped
   * it implies (128 + signal), or unknown for one that exited on its own.
   */
  private terminated (run: Run, reason: string, killedBy?: 'SIGTERM' | 'SIGKILL'): ContainerState {
    const finishedAt = new Date().toISOString()
    const exit = run.exit
    if (exit !== null) {
      const signal = exit.signal === null ? undefined : exit.signal === 'SIGKILL' ? 9 : exit.signal === 'SIGTERM' ? 15 : undefined
      const code = exit.code ?? 128 + (signal ?? 0)
      return { terminated: { exitCode: code, ...(signal === undefined ? {} : { signal }), reason: code === 0 ? 'Completed' : reason, startedAt: run.startedAt, finishedAt } }
    }
    if (killedBy !== undefined) return { terminated: { exitCode: killedBy === 'SIGKILL' ? 137 : 143, reason, startedAt: run.startedAt, finishedAt } }
    return { terminated: { exitCode: 137, reason: 'ContainerStatusUnknown', message: 'the lab started this process; its exit status is unknown to the kubelet', startedAt: run.startedAt, finishedAt } }
  }

  private persist (): void {
    const run = this.run
    this.ctx.recorded({
      pid: run?.pid ?? 0,
      startTime: run?.startTime ?? null,
      startedAt: run?.startedAt ?? '',
      restartCount: this.restartCount,
      lastState: this.lastState,
      ended: this.ended
    })
  }
}
