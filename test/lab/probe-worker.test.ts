import t from 'tap'
import { PROBE_DEFAULTS, type LabProbe, type ProbeKind } from '../../src/lab/manifest/spec'
import { isPodReady, pendingPod, podStatus, type ObservedContainer } from '../../src/lab/pod-status'
import { ProbeWorker, type ProbeState, type Timers } from '../../src/lab/kubelet/probe-worker'

// The kubelet's probe timing and thresholds, and the pod status it publishes — pure, on
// a fake clock: initial states per kind, initialDelaySeconds, periodSeconds, success and
// failure thresholds, gating, which probes stop; conditions and their transition times.

class FakeClock implements Timers {
  t = 1_000_000
  private queue: Array<{ at: number, fn: () => void, id: number }> = []
  private next = 0
  now = (): number => this.t
  setTimeout = (fn: () => void, ms: number): unknown => { const id = ++this.next; this.queue.push({ at: this.t + ms, fn, id }); return id }
  clearTimeout = (h: unknown): void => { this.queue = this.queue.filter((q) => q.id !== h) }
  /** Runs every timer due within `ms`, in order, letting probe promises settle. */
  async advance (ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at)
      const q = this.queue[0]
      if (q === undefined || q.at > end) break
      this.queue.shift()
      this.t = q.at
      q.fn()
      for (let i = 0; i < 5; i++) await Promise.resolve()
    }
    this.t = end
  }
}

function probe (over: Partial<LabProbe> = {}): LabProbe {
  return { handler: { kind: 'tcpSocket', port: 80, host: null }, initialDelaySeconds: 0, terminationGracePeriodSeconds: null, ...PROBE_DEFAULTS, ...over }
}

function worker (kind: ProbeKind, p: LabProbe, clock: FakeClock, outcomes: boolean[], enabled?: () => boolean): { w: ProbeWorker, runs: number[], states: ProbeState[] } {
  const runs: number[] = []
  const states: ProbeState[] = []
  const w = new ProbeWorker({
    kind,
    probe: p,
    startedAt: clock.now(),
    timers: clock,
    enabled,
    run: async () => { runs.push(clock.now()); return { ok: outcomes.shift() ?? true, detail: '' } },
    onResult: (_o, state) => { states.push(state) }
  })
  w.start()
  return { w, runs, states }
}

t.test('initial states: readiness not ready until proven, liveness alive, startup unknown', async (t) => {
  const clock = new FakeClock()
  t.equal(worker('readiness', probe(), clock, []).w.state, 'failure')
  t.equal(worker('liveness', probe(), clock, []).w.state, 'success')
  t.equal(worker('startup', probe(), clock, []).w.state, 'unknown')
})

t.test('nothing before initialDelaySeconds, then one probe per periodSeconds', async (t) => {
  const clock = new FakeClock()
  const start = clock.now()
  const { runs } = worker('readiness', probe({ initialDelaySeconds: 5, periodSeconds: 2 }), clock, [])
  await clock.advance(4999)
  t.same(runs, [])
  await clock.advance(6001)
  t.same(runs.map((r) => r - start), [5000, 7000, 9000, 11000])
})

t.test('thresholds: a flip takes successThreshold successes or failureThreshold failures in a row', async (t) => {
  const clock = new FakeClock()
  const { w, states } = worker('readiness', probe({ periodSeconds: 1, successThreshold: 2, failureThreshold: 3 }),
    clock, [true, false, true, true, false, false, true, false, false, false])
  await clock.advance(9500) // ten probes: at 0 s, 1 s … 9 s
  t.same(states, ['failure', 'failure', 'failure', 'success', 'success', 'success', 'success', 'success', 'success', 'failure'])
  t.equal(w.state, 'failure')
  t.ok(w.record({ ok: true, detail: '' }) === false && w.record({ ok: true, detail: '' }), 'record() says when the published state changes')
})

t.test('a failed liveness probe stops (the container is restarted); readiness goes on; startup stops once it succeeded', async (t) => {
  const clock = new FakeClock()
  const live = worker('liveness', probe({ periodSeconds: 1, failureThreshold: 2 }), clock, [false, false, true, true])
  const ready = worker('readiness', probe({ periodSeconds: 1, failureThreshold: 1 }), clock, [false, false, true, true])
  const startup = worker('startup', probe({ periodSeconds: 1, failureThreshold: 5 }), clock, [false, true, false])
  await clock.advance(5000)
  t.same(live.states, ['success', 'failure'], 'two failures, then no more probing')
  t.same(ready.states, ['failure', 'failure', 'success', 'success', 'success', 'success'])
  t.same(startup.states, ['unknown', 'success'], 'started: the startup probe is done')
})

t.test('a gated probe waits (liveness and readiness until the startup probe succeeded)', async (t) => {
  const clock = new FakeClock()
  let started = false
  const { runs } = worker('readiness', probe({ periodSeconds: 1 }), clock, [], () => started)
  await clock.advance(3000)
  t.same(runs, [])
  started = true
  await clock.advance(2000)
  t.equal(runs.length, 2)
})

t.test('pod status: Pending while nothing ran; conditions in the kubelet\'s order; transition times only move on a change', async (t) => {
  const t0 = '2026-01-01T00:00:00.000Z'
  const t1 = '2026-01-01T00:00:05.000Z'
  const t2 = '2026-01-01T00:00:09.000Z'
  const pending = podStatus(pendingPod(['a', 'b'], t0, ['10.244.1.2', 'fd00:244:1::2'], ['172.30.0.1', 'fd30::1']), null, t0)
  t.equal(pending.phase, 'Pending')
  t.same(pending.conditions.map((c) => [c.type, c.status]), [['PodReadyToStartContainers', 'False'], ['Initialized', 'True'], ['Ready', 'False'], ['ContainersReady', 'False'], ['PodScheduled', 'True']])
  t.match(pending.conditions[2], { reason: 'ContainersNotReady', message: 'containers with unready status: [a b]' })
  t.same(pending.containerStatuses[0], { name: 'a', state: { waiting: { reason: 'ContainerCreating' } }, lastState: {}, ready: false, started: false, restartCount: 0 })
  t.same([pending.podIP, pending.hostIP], ['10.244.1.2', '172.30.0.1'])
  t.notOk(isPodReady(pending))

  const running = (ready: boolean): ObservedContainer => ({ name: 'a', state: { running: { startedAt: t1 } }, started: true, ready, restartCount: 0, containerID: 'containerd://x' })
  const observed = (ready: boolean): Parameters<typeof podStatus>[0] => ({ sandboxReady: true, containers: [running(ready)], startTime: t0, podIPs: [], hostIPs: [] })
  const notReady = podStatus(observed(false), pending, t1)
  t.equal(notReady.phase, 'Running')
  t.equal(notReady.conditions[0].lastTransitionTime, t1, 'PodReadyToStartContainers changed')
  t.equal(notReady.conditions[2].lastTransitionTime, t0, 'Ready did not')
  const ready = podStatus(observed(true), notReady, t2)
  t.ok(isPodReady(ready))
  t.equal(ready.conditions[2].lastTransitionTime, t2)
  t.notOk('reason' in ready.conditions[2])
  t.same(podStatus(observed(true), ready, '2026-01-01T01:00:00.000Z'), ready, 'nothing changed: the identical status, nothing to write')
})
