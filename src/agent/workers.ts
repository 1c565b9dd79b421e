import { closeSync } from 'node:fs'
import { extname, join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { AggregatorRegistry, Counter, type Registry } from 'prom-client'
import { HEAP } from '../config/env'
import { native } from '../native/binding'
import type { Logger } from '../telemetry/logger'
import type { DataPlane } from '../worker/data-plane'
import type { SpanBatch } from '../telemetry/tracing/span-batcher'
import type { HeapFigures } from '../telemetry/heap'
import type { FromWorker, PodToServe, Publication, Reply, Request, ToWorker, WorkerStats } from '../worker/protocol'
import type { ThreadInit } from '../worker/thread'
import { fromWire } from '../worker/wire-error'

// The main thread's side of the data-path workers (Envoy's model): it publishes
// snapshots to every worker, asks them to serve pods and the tunnel port, sums their
// metrics, and restarts a worker that died.
//
// Listening sockets are the main thread's: it makes every one (src/agent/pod-enrollment.ts,
// src/agent/node-tunnel.ts) and hands each worker its own duplicate fd, so a socket — and
// the connections queued on it — outlives the worker serving it. A worker that dies
// leaves the kernel's selection (capture's live workers) before anything else happens,
// its connections are counted as lost, and a new worker with the same id is given the
// latest publications and its pods and tunnel socket again.
//
// What holds for the node lives in shared memory the main thread made once and every
// worker attaches to (the template's `tunnel` and `limits`: src/agent/node-tunnel.ts,
// src/limits/node-limits.ts): a restarted worker attaches to the same memory, so its
// limits are the node's from its first request, and no restart resets them.

/** One worker as the main thread drives it: in a thread, or inline on the main thread. */
export interface WorkerHost {
  readonly id: number
  publish (p: Publication): void
  request (r: Request): Promise<Reply>
  /** Connections the worker holds now (read from shared memory; valid after it died). */
  connections (): number
  /** Ends the worker at once (tests; shutdown uses the 'close' request first). */
  terminate (): Promise<void>
}

/** What a worker thread needs that is not per worker. */
export type ThreadTemplate = Omit<ThreadInit, 'id' | 'live'>

const RESTART_DELAY_MS = { initial: 100, max: 5000 }

/** A worker thread. `onExit` is called once if it ends without having been asked to. */
export class ThreadWorker implements WorkerHost {
  private readonly worker: Worker
  private readonly pending = new Map<number, { resolve: (r: Reply) => void, reject: (e: Error) => void }>()
  private nextId = 1
  private readonly live: Int32Array
  private ended = false
  readonly ready: Promise<void>

  /** `onSpans` takes the thread's finished spans (tracing on); absent: they are not expected. */
  constructor (readonly id: number, template: ThreadTemplate, onExit: (code: number) => void, onSpans?: (batch: SpanBatch) => void) {
    const live = new SharedArrayBuffer(4)
    this.live = new Int32Array(live)
    // thread.js next to the compiled agent; thread.ts when the tests run the sources.
    const file = join(__dirname, '..', 'worker', `thread${extname(__filename)}`)
    // Its own young generation capped (src/config/env.ts, HEAP): V8's default grows to 48 MiB per thread.
    this.worker = new Worker(file, { workerData: { ...template, id, live } satisfies ThreadInit, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: HEAP.workerYoungGenerationMb } })
    let readyResolve: () => void = () => {}
    let readyReject: (e: Error) => void = () => {}
    this.ready = new Promise((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    this.worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') { readyResolve(); return }
      if (m.type === 'spans') { onSpans?.(m); return }
      const p = this.pending.get(m.id)
      if (p === undefined) return
      this.pending.delete(m.id)
      if (m.error !== undefined) p.reject(fromWire(m.error))
      else p.resolve(m.reply as Reply)
    })
    // An 'error' event is followed by 'exit'; the exit is what counts.
    this.worker.on('error', () => {})
    this.worker.once('exit', (code) => {
      const err = new Error(`worker ${id} exited (code ${code})`)
      readyReject(err)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      const expected = this.ended
      this.ended = true
      if (!expected) onExit(code)
    })
  }

  publish (p: Publication): void {
    if (!this.ended) this.worker.postMessage({ type: 'publish', publication: p } satisfies ToWorker)
  }

  async request (r: Request): Promise<Reply> {
    if (this.ended) throw new Error(`worker ${this.id} has ended`)
    const id = this.nextId++
    return await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ type: 'request', id, request: r } satisfies ToWorker)
    })
  }

  connections (): number { return Atomics.load(this.live, 0) }

  async terminate (): Promise<void> {
    this.ended = true
    await this.worker.terminate()
  }

  /** Tests: ends the thread as a crash would (the main thread restarts it). */
  async kill (): Promise<void> {
    await this.worker.terminate()
  }
}

/** The single worker of an agent with --workers 1: the data plane on the main thread. */
export class InlineWorker implements WorkerHost {
  readonly id = 0
  constructor (private readonly plane: DataPlane) {}
  publish (p: Publication): void { this.plane.publish(p) }
  async request (r: Request): Promise<Reply> { return await this.plane.request(r) }
  connections (): number { return this.plane.connections() }
  async terminate (): Promise<void> { await this.plane.close() }
}

export interface WorkerSetOptions {
  readonly count: number
  /** Makes worker `id` (again, after a crash); `onExit` reports an unexpected end. */
  readonly spawn: (id: number, onExit: (code: number) => void) => Promise<WorkerHost>
  /** Called with the workers that may take new connections, whenever that changes (capture's selection). */
  readonly onLive: (ids: readonly number[]) => void
  /** What a restarted worker must serve again: its pods and tunnel socket (with fresh duplicates). */
  readonly replay: (id: number) => Request[]
  readonly log: Logger
  readonly registry: Registry
  /** Worker `id` ended unexpectedly (after its exit, before a new one takes the id): drop what it held of the node's shared state. */
  readonly forget?: (id: number) => void
}

export class WorkerSet {
  private readonly hosts: Array<WorkerHost | null>
  private readonly latest = new Map<Publication['kind'], Publication>()
  private readonly restarts: Counter<'worker'>
  private readonly lost: Counter<'worker'>
  private readonly drainClosed: Counter<'worker'>
  private closing = false

  private constructor (private readonly o: WorkerSetOptions) {
    this.hosts = new Array(o.count).fill(null)
    this.restarts = new Counter({ name: 'ferry_worker_restarts_total', help: 'Data-path workers that failed and were started again, by worker', labelNames: ['worker'], registers: [o.registry] })
    this.lost = new Counter({ name: 'ferry_worker_connections_lost_total', help: 'Connections reset because the worker holding them failed, by worker', labelNames: ['worker'], registers: [o.registry] })
    this.drainClosed = new Counter({ name: 'ferry_drain_closed_connections_total', help: 'Connections still open when the drain grace period ended, reset then, by worker', labelNames: ['worker'], registers: [o.registry] })
  }

  static async start (o: WorkerSetOptions): Promise<WorkerSet> {
    const set = new WorkerSet(o)
    try {
      await Promise.all(set.hosts.map(async (_, id) => { set.hosts[id] = await o.spawn(id, (code) => { set.died(id, code) }) }))
    } catch (err) {
      await set.close()
      throw err
    }
    o.onLive(set.liveIds())
    return set
  }

  get size (): number { return this.hosts.length }

  liveIds (): number[] {
    return this.hosts.flatMap((h, id) => h === null ? [] : [id])
  }

  /** Sends a snapshot to every worker; the latest of each kind is replayed to a restarted one. */
  publish (p: Publication): void {
    this.latest.set(p.kind, p)
    for (const h of this.hosts) h?.publish(p)
  }

  /** Asks every live worker; a request a worker cannot answer fails the whole. */
  async all (r: Request | ((id: number) => Request)): Promise<Reply[]> {
    return await Promise.all(this.hosts.flatMap((h) => h === null ? [] : [h.request(typeof r === 'function' ? r(h.id) : r)]))
  }

  /**
   * Serves a pod on every worker, each with its own duplicates of the listening fds; all
   * or nothing. Resolves with the addresses the first worker's listeners are bound to.
   */
  async servePod (specFor: (id: number) => PodToServe): Promise<ReadonlyArray<{ address: string, port: number } | null>> {
    const results = await Promise.allSettled(this.hosts.map(async (h) => h === null ? null : await this.serve(h, { kind: 'serve-pod', pod: specFor(h.id) })))
    const failed = results.find((r) => r.status === 'rejected')
    if (failed === undefined) {
      const first = results.find((r) => r.status === 'fulfilled' && r.value !== null) as PromiseFulfilledResult<Extract<Reply, { kind: 'served' }>> | undefined
      return first?.value.addresses ?? []
    }
    await this.all({ kind: 'unserve-pod', uid: specFor(0).uid }).catch(() => {})
    throw (failed as PromiseRejectedResult).reason
  }

  /** Serves the tunnel port on every worker, each on its own listening socket (`targetFor`); resolves with the port. */
  async serveTunnel (targetFor: (id: number) => Extract<Request, { kind: 'serve-tunnel' }>['target']): Promise<number> {
    const replies = await Promise.all(this.hosts.map(async (h) => h === null ? null : await this.serve(h, { kind: 'serve-tunnel', target: targetFor(h.id) })))
    const first = replies.find((r) => r !== null) as Extract<Reply, { kind: 'tunnel' }> | undefined
    return first?.port ?? 0
  }

  async unservePod (uid: string): Promise<void> {
    await this.all({ kind: 'unserve-pod', uid })
  }

  async stats (): Promise<WorkerStats[]> {
    return (await this.all({ kind: 'stats' })).map((r) => (r as Extract<Reply, { kind: 'stats' }>).stats)
  }

  /** Each worker's heap (after a full collection of each when `gc`). */
  async memory (gc: boolean): Promise<Array<{ worker: number, heap: HeapFigures }>> {
    return (await this.all({ kind: 'memory', gc })).map((r) => { const m = r as Extract<Reply, { kind: 'memory' }>; return { worker: m.worker, heap: m.heap } })
  }

  /** The workers' tunnel servers and pools: the node's sums, and each worker's. */
  async tunnelStats (): Promise<{ port: number, server: Record<string, number>, pool: Record<string, number>, workers: Array<{ worker: number } & NonNullable<WorkerStats['tunnel']>> }> {
    const each = (await this.stats()).flatMap((s) => s.tunnel === null ? [] : [{ worker: s.worker, ...s.tunnel }])
    return { port: each[0]?.port ?? 0, server: sumStats(each.map((w) => w.server)), pool: sumStats(each.map((w) => w.pool)), workers: each }
  }

  /** The policy generation every worker has in force (the lowest). */
  async policyGeneration (): Promise<number> {
    const gens = (await this.all({ kind: 'sync' })).map((r) => (r as Extract<Reply, { kind: 'sync' }>).policyGeneration)
    return gens.length === 0 ? 0 : Math.min(...gens)
  }

  /** The workers' metrics summed (counters added, histograms merged, gauges summed) with `own`. */
  async metrics (own: Registry): Promise<Registry> {
    const parts = await this.all({ kind: 'metrics' })
    return AggregatorRegistry.aggregate([await own.getMetricsAsJSON(), ...parts.map((r) => (r as Extract<Reply, { kind: 'metrics' }>).metrics)])
  }

  /** The end of a drain: every worker resets the connections it still holds; how many, over all workers (counted per worker). */
  async closeConnections (): Promise<number> {
    const closed = await Promise.all(this.hosts.map(async (h) => {
      if (h === null) return 0
      const n = (await h.request({ kind: 'close-connections' }) as Extract<Reply, { kind: 'closed' }>).connections
      if (n > 0) this.drainClosed.inc({ worker: String(h.id) }, n)
      return n
    }))
    return closed.reduce((a, b) => a + b, 0)
  }

  /** Makes worker `id` fail as an uncaught exception would (a drill; the worker is restarted). */
  async crash (id: number): Promise<void> {
    const h = this.hosts[id]
    if (h === null || h === undefined) throw new Error(`no live worker ${id}`)
    await h.request({ kind: 'crash' })
  }

  /** Tests: the worker host of `id`. */
  host (id: number): WorkerHost | null { return this.hosts[id] ?? null }

  async close (): Promise<void> {
    this.closing = true
    await Promise.all(this.hosts.map(async (h) => {
      if (h === null) return
      try { await h.request({ kind: 'close' }) } catch {}
      await h.terminate()
    }))
    this.hosts.fill(null)
  }

  /**
   * Sends `r` with the worker's own duplicates of the listening fds it names. A duplicate
   * is the worker's once the request is sent (its server closes it), so only a failure
   * before sending closes them here.
   */
  private async serve (h: WorkerHost, r: Request): Promise<Reply> {
    const dups: number[] = []
    const dup = (fd: number): number => {
      const d = native().dupFd(fd)
      dups.push(d)
      return d
    }
    let sent: Request
    try {
      if (r.kind === 'serve-pod') {
        sent = { kind: 'serve-pod', pod: { ...r.pod, listeners: r.pod.listeners.map((l) => 'fd' in l.target ? { ...l, target: { fd: dup(l.target.fd) } } : l) } }
      } else if (r.kind === 'serve-tunnel' && 'fd' in r.target) {
        sent = { kind: 'serve-tunnel', target: { ...r.target, fd: dup(r.target.fd) } }
      } else {
        sent = r
      }
    } catch (err) {
      for (const fd of dups) { try { closeSync(fd) } catch {} }
      throw err
    }
    return await h.request(sent)
  }

  private died (id: number, code: number): void {
    const h = this.hosts[id]
    this.hosts[id] = null
    // Out of the kernel's selection first: no new connection is steered to it.
    this.o.onLive(this.liveIds())
    if (this.closing) return
    const lost = h?.connections() ?? 0
    this.restarts.inc({ worker: String(id) })
    if (lost > 0) this.lost.inc({ worker: String(id) }, lost)
    this.o.log.error({ worker: id, exitCode: code, connections: lost, code: 'FERRY_ERR_WORKER' }, 'worker ended unexpectedly; starting a new one')
    this.o.forget?.(id)
    void this.respawn(id, RESTART_DELAY_MS.initial)
  }

  private async respawn (id: number, delayMs: number): Promise<void> {
    if (this.closing) return
    try {
      const h = await this.o.spawn(id, (code) => { this.died(id, code) })
      for (const p of this.latest.values()) h.publish(p)
      for (const r of this.o.replay(id)) await this.serve(h, r)
      if (this.closing) { await h.terminate(); return }
      this.hosts[id] = h
      this.o.onLive(this.liveIds())
      this.o.log.info({ worker: id }, 'worker started again')
    } catch (err) {
      this.o.log.error({ worker: id, err }, 'worker could not be started again; retrying')
      setTimeout(() => { void this.respawn(id, Math.min(RESTART_DELAY_MS.max, delayMs * 2)) }, delayMs).unref()
    }
  }
}

/** Numbers added field by field (the node's view of per-worker stats). */
function sumStats<T extends object> (all: readonly T[]): Record<string, number> {
  const sum: Record<string, number> = {}
  for (const s of all) for (const [k, v] of Object.entries(s)) if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v
  return sum
}
