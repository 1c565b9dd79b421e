import { closeSync } from 'node:fs'
import type { Registry } from 'prom-client'
import { FerryError, ferryError } from '../errors'
import { socketPort } from '../native/listen'
import type { Logger } from '../telemetry/logger'
import { type KernelSynCounts, registerKernelSynMetrics, registerTunnelMetrics } from '../telemetry/tunnel-metrics'
import { type SynDropLog, watchSynDrops } from '../telemetry/tunnel-syn-log'
import { type AdmissionLimits, type BufferLimits, NodeBufferBudget, TUNNEL_DEFAULTS, TunnelAdmission } from '../tunnel'
import { openFilesLimit, pendingLimitFor } from './fd-limit'
import { bufferBudgetFor, memoryLimit } from './memory-limit'
import type { TunnelSynHandle } from './platform'

// The node's side of the mTLS tunnel (HBONE) that is not any one worker's, present when
// the agent has a CA. The tunnel's servers and pools are the workers' (src/worker/worker-tunnel.ts:
// each worker serves the tunnel port on a listening socket of its own, made here, and
// keeps its own sessions to peer nodes); what holds for the node is here:
//
// The node-wide bounds live in shared memory the agent owns (admission.ts,
// buffer-budget.ts): unverified connections on 15008 (at most a share of the process's
// open-files limit, fd-limit.ts), handshakes per second per source, and the bytes tunnel
// streams may hold (at most a share of the agent's memory limit, memory-limit.ts). Every
// worker attaches to the same memory (`shared`), so the bounds stay per node however many
// workers carry connections.
//
// In front of all that, where the platform has it (the real agent: src/tunnel-syn), the
// kernel: the listeners on 15008 are made by the addon with a BPF socket filter that drops
// the SYNs of a source over the same per-source rate, and TCP_DEFER_ACCEPT, so a flood
// from one source, and silent connections, cost the agent nothing. The addresses of peer
// nodes (from discovery: where the cluster's pods run) are exempt from that kernel rate,
// since a SYN can be spoofed. The user-space gate stays behind it as the second line
// (pending bound, first-byte timeout, the rate again, on completed handshakes).

export interface NodeTunnelOptions {
  readonly log: Logger
  /** The agent's registry: the tunnel's node-wide gauges go there. */
  readonly registry?: Registry
  /** Tests: other limits than the defaults (the pending bound otherwise follows the fd limit). */
  readonly limits?: { readonly admission?: Partial<AdmissionLimits>, readonly buffers?: Partial<BufferLimits>, readonly firstByteTimeoutMs?: number }
  /** The platform's kernel admission (Platform.openTunnelSyn), opened at listen(); absent: user space only. */
  readonly openSyn?: (limits: { perSecond: number, burst: number }) => TunnelSynHandle
}

/** What a worker serves the tunnel port on: a listening fd made here, or an address (user-space admission only). */
export type TunnelListenTarget = { readonly fd: number, readonly backlog: number } | { readonly host: string, readonly port: number, readonly backlog: number }

export class NodeTunnel {
  /** The node-wide state every worker attaches to (TunnelAdmission.attach, NodeBufferBudget.attach). */
  readonly shared: { readonly admission: SharedArrayBuffer, readonly buffers: SharedArrayBuffer, readonly refusalLog: SharedArrayBuffer }
  private readonly admission: TunnelAdmission
  private readonly budget: NodeBufferBudget
  /** The kernel admission in front of the listeners, once listening (null: user space only). */
  private syn: TunnelSynHandle | null = null
  private synLog: SynDropLog | null = null
  /** The peer nodes' addresses, as last given (applied to the kernel admission once it is open). */
  private peers: readonly string[] = []
  /** The listening fds, by worker (the main thread's; workers serve duplicates). */
  private fds: number[] = []
  private live: readonly number[] = []

  constructor (private readonly o: NodeTunnelOptions) {
    const fdLimit = openFilesLimit()
    this.admission = TunnelAdmission.create({ pendingMax: pendingLimitFor(fdLimit), ...o.limits?.admission })
    const memLimit = memoryLimit()
    this.budget = NodeBufferBudget.create({ nodeBytes: bufferBudgetFor(memLimit), ...o.limits?.buffers })
    // The refusal log's line budget is the node's, whichever worker refuses (src/telemetry/tunnel-refusals.ts).
    this.shared = { admission: this.admission.buffer, buffers: this.budget.buffer, refusalLog: new SharedArrayBuffer(4) }
    if (o.registry !== undefined) {
      registerTunnelMetrics(o.registry, () => ({
        pending: this.admission.pending(),
        pendingLimit: this.admission.limits.pendingMax,
        reservedBytes: this.budget.reservedBytes(),
        stalledBytes: this.budget.stalledBytes(),
        budgetBytes: this.budget.limits.nodeBytes
      }))
      registerKernelSynMetrics(o.registry, () => this.synCounts())
    }
    const a = this.admission.limits
    const b = this.budget.limits
    o.log.info({ fdLimit, memoryLimit: memLimit, pendingMax: a.pendingMax, handshakesPerSource: { perSecond: a.perSourcePerSecond, burst: a.perSourceBurst }, bufferBudget: { node: b.nodeBytes, open: b.openBytes, session: b.sessionBytes, minWindow: b.minWindowBytes } }, 'tunnel limits')
  }

  /** The first-byte timeout the workers' servers use (tests shorten it). */
  get firstByteTimeoutMs (): number | undefined { return this.o.limits?.firstByteTimeoutMs }

  /**
   * One listening socket per worker on [::]:port (dual stack), or 0.0.0.0:port where the
   * node has no IPv6, behind the kernel admission when the platform has it (several
   * workers' sockets share the port through SO_REUSEPORT). Without the kernel admission
   * (the test platforms) there is one worker, and it listens itself on the address
   * returned. Throws FERRY_ERR_LISTEN when the port cannot be had, FERRY_ERR_BPF_LOAD
   * or FERRY_ERR_BPF_ATTACH when the kernel admission cannot be loaded or attached.
   */
  listeners (port: number, workers: number, adopt: (key: string) => number | undefined = () => undefined): TunnelListenTarget[] {
    const backlog = TUNNEL_DEFAULTS.listenBacklog
    if (this.o.openSyn === undefined) return [{ host: '::', port, backlog }]
    if (this.syn === null) {
      const a = this.admission.limits
      this.syn = this.o.openSyn({ perSecond: a.perSourcePerSecond, burst: a.perSourceBurst })
      this.syn.setPeers(this.peers)
      const syn = this.syn
      this.synLog = watchSynDrops(this.o.log, () => syn.counts().dropped)
    }
    const syn = this.syn
    const made = (host: string, p: number, w: number): number => {
      const handed = adopt(tunnelKey(w))
      return handed === undefined ? make(host, p) : syn.adopt(handed, { port: p, reusePort: workers > 1 })
    }
    const make = (host: string, p: number): number => syn.listen({ family: host === '::' ? 6 : 4, address: host, port: p, backlog, dualStack: true, deferAcceptSeconds: TUNNEL_DEFAULTS.deferAcceptSeconds, reusePort: workers > 1 })
    let host = '::'
    try {
      this.fds.push(made(host, port, 0))
    } catch (err) {
      const code = errnoOf(err)
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw listenError(port, err)
      host = '0.0.0.0'
      try { this.fds.push(made(host, port, 0)) } catch (err4) { throw listenError(port, err4) }
    }
    // Port 0: the others join the port the first one got.
    const bound = port === 0 ? boundPort(this.fds[0]) : port
    try {
      for (let w = 1; w < workers; w++) this.fds.push(made(host, bound, w))
    } catch (err) {
      this.closeFds()
      throw listenError(port, err)
    }
    if (workers > 1) {
      this.fds.forEach((fd, w) => { syn.setListener(w, fd) })
      syn.setLiveWorkers(this.live)
    }
    return this.fds.map((fd) => ({ fd, backlog }))
  }

  /** The workers whose tunnel listeners take new connections (the kernel's selection; none without kernel admission). */
  setLiveWorkers (ids: readonly number[]): void {
    this.live = ids
    if (this.syn !== null && this.fds.length > 1) this.syn.setLiveWorkers(ids)
  }

  /** Logs where the tunnel listens, once the workers serve it. */
  listening (port: number): void {
    this.o.log.info({ port, workers: Math.max(1, this.fds.length), kernelAdmission: this.syn === null ? null : { deferAcceptSeconds: TUNNEL_DEFAULTS.deferAcceptSeconds, backlog: TUNNEL_DEFAULTS.listenBacklog } }, 'tunnel server listening')
  }

  /** The main thread's fd of worker `w`'s listening socket (to serve it again after a restart); null without kernel admission. */
  listenerOf (w: number): TunnelListenTarget | null {
    const fd = this.fds[w]
    return fd === undefined ? null : { fd, backlog: TUNNEL_DEFAULTS.listenBacklog }
  }

  /** The listening sockets to hand to the agent after us (src/handoff), by key. */
  handoffListeners (): Array<{ key: string, fd: number }> {
    return this.fds.map((fd, w) => ({ key: tunnelKey(w), fd }))
  }

  /** The peer nodes' addresses (peer-nodes.ts): exempt from the kernel's SYN rate. */
  setPeerNodes (addresses: readonly string[]): void {
    this.peers = addresses
    this.syn?.setPeers(addresses)
  }

  /** What the kernel did with SYNs to the tunnel port; null without kernel admission. */
  synCounts (): KernelSynCounts | null {
    return this.syn === null ? null : this.syn.counts()
  }

  /** The node-wide part of /debug/tunnel (the workers add their servers, pools and the bytes their streams hold). */
  stats (): { kernelSyns: KernelSynCounts | null, pending: number, buffers: { reservedBytes: number, stalledBytes: number, budgetBytes: number, streams: number } } {
    return {
      kernelSyns: this.synCounts(),
      pending: this.admission.pending(),
      buffers: { reservedBytes: this.budget.reservedBytes(), stalledBytes: this.budget.stalledBytes(), budgetBytes: this.budget.limits.nodeBytes, streams: this.budget.streams() }
    }
  }

  /** Closes the listening sockets (after the workers stopped serving them) and the kernel admission. */
  close (): void {
    this.closeFds()
    this.synLog?.stop()
    this.synLog = null
    this.syn?.close()
    this.syn = null
  }

  private closeFds (): void {
    for (const fd of this.fds) { try { closeSync(fd) } catch {} }
    this.fds = []
  }
}

/** The handoff key of worker `w`'s tunnel listener. */
export function tunnelKey (w: number): string { return `tunnel/w${w}` }

function boundPort (fd: number): number {
  return socketPort(fd)
}

/** The errno name of a failed listen: Node's (`code`) or the addon's (FerryError `errno`). */
function errnoOf (err: unknown): string | undefined {
  return err instanceof FerryError ? err.errno : (err as NodeJS.ErrnoException).code
}

/** The port could not be had: FERRY_ERR_LISTEN. The kernel admission's own failures keep their codes. */
function listenError (port: number, err: unknown): Error {
  if (err instanceof FerryError && err.code !== 'FERRY_ERR_LISTEN') return err
  return ferryError('FERRY_ERR_LISTEN', `--tunnel-port ${port}: cannot listen on [::]:${port}: ${(err as Error).message}`, { cause: err, errno: errnoOf(err) })
}
