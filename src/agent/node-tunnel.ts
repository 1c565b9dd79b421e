import type { Registry } from 'prom-client'
import type { Pod } from '../discovery/model'
import { FerryError, ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { type KernelSynCounts, registerKernelSynMetrics, registerTunnelMetrics } from '../telemetry/tunnel-metrics'
import { type SynDropLog, watchSynDrops } from '../telemetry/tunnel-syn-log'
import { type AdmissionLimits, type BufferLimits, NodeBufferBudget, type RefusalHook, SniIndex, TUNNEL_DEFAULTS, TunnelAdmission, TunnelPool, type TunnelRequest, TunnelServer } from '../tunnel'
import { openFilesLimit, pendingLimitFor } from './fd-limit'
import { bufferBudgetFor, memoryLimit } from './memory-limit'
import type { WorkloadIdentity } from './identities'
import type { TunnelSynHandle } from './platform'

// The node's two ends of the mTLS tunnel (HBONE), present when the agent has a CA:
//
//   server  TLS 1.3 + HTTP/2 CONNECT on [::]:15008 in the node's netns. A client names
//           the identity it expects by SNI (src/tunnel/sni.ts); the SNI index maps it back
//           to one of this node's identities — those of its enrolled pods — and the
//           server presents that identity's *current* SVID, read at each handshake, so a
//           rotation applies to the next session with no event to handle. Streams go to
//           the proxy's tunnel-inbound handler.
//   pool    one per agent: CONNECT streams to peer nodes, sessions shared per (source
//           identity, destination identity, node); it reads the source's SVID at each
//           open and drains sessions made with an older one.
//
// Refusals on both ends go to one hook (logged and counted by telemetry).
//
// The node-wide bounds live here, in shared memory the agent owns (admission.ts,
// buffer-budget.ts): unverified connections on 15008 (at most a share of the process's
// open-files limit, fd-limit.ts), handshakes per second per source, and the bytes tunnel
// streams may hold (at most a share of the agent's memory limit, memory-limit.ts). The server and the pool are given the same objects; a data-path
// worker thread would be given `shared` and attach to it, so the bounds stay per node
// however many workers carry connections.
//
// In front of all that, where the platform has it (the real agent: src/tunnel-syn), the
// kernel: the listener on 15008 is made by the addon with a BPF socket filter that drops
// the SYNs of a source over the same per-source rate, and TCP_DEFER_ACCEPT, so a flood
// from one source, and silent connections, cost the agent nothing. The addresses of peer
// nodes (from discovery: where the cluster's pods run) are exempt from that kernel rate,
// since a SYN can be spoofed. The user-space gate stays behind it as the second line
// (pending bound, first-byte timeout, the rate again, on completed handshakes).

const CLOSE_GRACE_MS = 1000

export interface NodeTunnelOptions {
  readonly identity: WorkloadIdentity
  readonly onStream: (req: TunnelRequest) => void
  readonly onRefused: RefusalHook
  readonly log: Logger
  /** The agent's registry: the tunnel's gauges go there. */
  readonly registry?: Registry
  /** Tests: other limits than the defaults (the pending bound otherwise follows the fd limit). */
  readonly limits?: { readonly admission?: Partial<AdmissionLimits>, readonly buffers?: Partial<BufferLimits>, readonly firstByteTimeoutMs?: number }
  /** The platform's kernel admission (Platform.openTunnelSyn), opened at listen(); absent: user space only. */
  readonly openSyn?: (limits: { perSecond: number, burst: number }) => TunnelSynHandle
}

export class NodeTunnel {
  readonly pool: TunnelPool
  /** The node-wide state a data-path worker attaches to (TunnelAdmission.attach, NodeBufferBudget.attach). */
  readonly shared: { readonly admission: SharedArrayBuffer, readonly buffers: SharedArrayBuffer }
  private readonly server: TunnelServer
  private readonly admission: TunnelAdmission
  private readonly budget: NodeBufferBudget
  private readonly names = new SniIndex()
  /** Identities in `names`. */
  private served = new Set<string>()
  private readonly identity: WorkloadIdentity
  private port = 0
  /** The kernel admission in front of the listener, once listening (null: user space only). */
  private syn: TunnelSynHandle | null = null
  private synLog: SynDropLog | null = null
  /** The peer nodes' addresses, as last given (applied to the kernel admission once it is open). */
  private peers: readonly string[] = []

  constructor (private readonly o: NodeTunnelOptions) {
    this.identity = o.identity
    const fdLimit = openFilesLimit()
    this.admission = TunnelAdmission.create({ pendingMax: pendingLimitFor(fdLimit), ...o.limits?.admission })
    const memLimit = memoryLimit()
    this.budget = NodeBufferBudget.create({ nodeBytes: bufferBudgetFor(memLimit), ...o.limits?.buffers })
    this.shared = { admission: this.admission.buffer, buffers: this.budget.buffer }
    this.pool = new TunnelPool({ onRefused: o.onRefused, bufferBudget: this.budget })
    this.server = new TunnelServer({
      selectSvid: (sni) => {
        const id = this.names.identityOf(sni)
        return id === null ? null : this.identity.svidFor(id)
      },
      onStream: o.onStream,
      onRefused: o.onRefused,
      admission: this.admission,
      bufferBudget: this.budget,
      ...(o.limits?.firstByteTimeoutMs === undefined ? {} : { firstByteTimeoutMs: o.limits.firstByteTimeoutMs })
    })
    if (o.registry !== undefined) {
      registerTunnelMetrics(o.registry, () => ({
        pending: this.admission.pending(),
        pendingLimit: this.admission.limits.pendingMax,
        reservedBytes: this.budget.reservedBytes(),
        heldBytes: this.budget.heldBytes(),
        budgetBytes: this.budget.limits.nodeBytes
      }))
      registerKernelSynMetrics(o.registry, () => this.synCounts())
    }
    const a = this.admission.limits
    const b = this.budget.limits
    o.log.info({ fdLimit, memoryLimit: memLimit, pendingMax: a.pendingMax, handshakesPerSource: { perSecond: a.perSourcePerSecond, burst: a.perSourceBurst }, bufferBudget: { node: b.nodeBytes, session: b.sessionBytes } }, 'tunnel limits')
  }

  /**
   * Listens on [::]:port (dual stack), or 0.0.0.0:port where the node has no IPv6, behind
   * the kernel admission when the platform has it. Resolves with the bound port. Throws
   * FERRY_ERR_LISTEN when the port cannot be had, FERRY_ERR_BPF_LOAD or
   * FERRY_ERR_BPF_ATTACH when the kernel admission cannot be loaded or attached.
   */
  async listen (port: number): Promise<number> {
    if (this.o.openSyn !== undefined && this.syn === null) {
      const a = this.admission.limits
      this.syn = this.o.openSyn({ perSecond: a.perSourcePerSecond, burst: a.perSourceBurst })
      this.syn.setPeers(this.peers)
      const syn = this.syn
      this.synLog = watchSynDrops(this.o.log, () => syn.counts().dropped)
    }
    try {
      this.port = (await this.listenOn('::', port)).port
    } catch (err) {
      const code = errnoOf(err)
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw listenError(port, err)
      try {
        this.port = (await this.listenOn('0.0.0.0', port)).port
      } catch (err4) {
        throw listenError(port, err4)
      }
    }
    this.o.log.info({ port: this.port, kernelAdmission: this.syn === null ? null : { deferAcceptSeconds: TUNNEL_DEFAULTS.deferAcceptSeconds, backlog: TUNNEL_DEFAULTS.listenBacklog } }, 'tunnel server listening')
    return this.port
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

  /** The identities the server may present: those of the enrolled pods (with `removeOthers`, exactly those). */
  sync (pods: readonly Pod[], opts: { removeOthers: boolean }): void {
    const wanted = new Set(pods.map((p) => this.identity.spiffeIdOf(p)))
    for (const id of wanted) { this.names.add(id); this.served.add(id) }
    if (!opts.removeOthers) return
    for (const id of this.served) if (!wanted.has(id)) this.names.delete(id)
    this.served = wanted
  }

  stats (): { port: number, server: ReturnType<TunnelServer['stats']>, pool: ReturnType<TunnelPool['stats']>, buffers: { reservedBytes: number, heldBytes: number, budgetBytes: number, streams: number }, kernelSyns: KernelSynCounts | null } {
    return {
      port: this.port,
      kernelSyns: this.synCounts(),
      server: this.server.stats(),
      pool: this.pool.stats(),
      buffers: { reservedBytes: this.budget.reservedBytes(), heldBytes: this.budget.heldBytes(), budgetBytes: this.budget.limits.nodeBytes, streams: this.budget.streams() }
    }
  }

  async close (): Promise<void> {
    await Promise.all([this.server.close(CLOSE_GRACE_MS), this.pool.close(CLOSE_GRACE_MS)])
    this.synLog?.stop()
    this.synLog = null
    this.syn?.close()
    this.syn = null
  }

  private async listenOn (host: string, port: number): Promise<{ port: number }> {
    const backlog = TUNNEL_DEFAULTS.listenBacklog
    if (this.syn === null) return await this.server.listen({ host, port, backlog })
    const fd = this.syn.listen({ family: host === '::' ? 6 : 4, address: host, port, backlog, dualStack: true, deferAcceptSeconds: TUNNEL_DEFAULTS.deferAcceptSeconds })
    return await this.server.listen({ fd, backlog })
  }
}

/** The errno name of a failed listen: Node's (`code`) or the addon's (FerryError `errno`). */
function errnoOf (err: unknown): string | undefined {
  return err instanceof FerryError ? err.errno : (err as NodeJS.ErrnoException).code
}

/** The port could not be had: FERRY_ERR_INVALID_ARG. The kernel admission's own failures keep their codes. */
function listenError (port: number, err: unknown): Error {
  if (err instanceof FerryError && err.code !== 'FERRY_ERR_LISTEN') return err
  return ferryError('FERRY_ERR_LISTEN', `--tunnel-port ${port}: cannot listen on [::]:${port}: ${(err as Error).message}`, { cause: err, errno: errnoOf(err) })
}
