import type { Registry } from 'prom-client'
import type { Pod } from '../discovery/model'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { registerTunnelMetrics } from '../telemetry/tunnel-metrics'
import { type AdmissionLimits, type BufferLimits, NodeBufferBudget, type RefusalHook, SniIndex, TunnelAdmission, TunnelPool, type TunnelRequest, TunnelServer } from '../tunnel'
import { openFilesLimit, pendingLimitFor } from './fd-limit'
import { bufferBudgetFor, memoryLimit } from './memory-limit'
import type { WorkloadIdentity } from './identities'

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
    }
    const a = this.admission.limits
    const b = this.budget.limits
    o.log.info({ fdLimit, memoryLimit: memLimit, pendingMax: a.pendingMax, handshakesPerSource: { perSecond: a.perSourcePerSecond, burst: a.perSourceBurst }, bufferBudget: { node: b.nodeBytes, session: b.sessionBytes } }, 'tunnel limits')
  }

  /** Listens on [::]:port (dual stack), or 0.0.0.0:port where the node has no IPv6. Resolves with the bound port. */
  async listen (port: number): Promise<number> {
    try {
      this.port = (await this.listenOn('::', port)).port
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw listenError(port, err)
      try {
        this.port = (await this.listenOn('0.0.0.0', port)).port
      } catch (err4) {
        throw listenError(port, err4)
      }
    }
    this.o.log.info({ port: this.port }, 'tunnel server listening')
    return this.port
  }

  /** The identities the server may present: those of the enrolled pods (with `removeOthers`, exactly those). */
  sync (pods: readonly Pod[], opts: { removeOthers: boolean }): void {
    const wanted = new Set(pods.map((p) => this.identity.spiffeIdOf(p)))
    for (const id of wanted) { this.names.add(id); this.served.add(id) }
    if (!opts.removeOthers) return
    for (const id of this.served) if (!wanted.has(id)) this.names.delete(id)
    this.served = wanted
  }

  stats (): { port: number, server: ReturnType<TunnelServer['stats']>, pool: ReturnType<TunnelPool['stats']>, buffers: { reservedBytes: number, heldBytes: number, budgetBytes: number, streams: number } } {
    return {
      port: this.port,
      server: this.server.stats(),
      pool: this.pool.stats(),
      buffers: { reservedBytes: this.budget.reservedBytes(), heldBytes: this.budget.heldBytes(), budgetBytes: this.budget.limits.nodeBytes, streams: this.budget.streams() }
    }
  }

  async close (): Promise<void> {
    await Promise.all([this.server.close(CLOSE_GRACE_MS), this.pool.close(CLOSE_GRACE_MS)])
  }

  private async listenOn (host: string, port: number): Promise<{ port: number }> {
    return await this.server.listen({ host, port })
  }
}

function listenError (port: number, err: unknown): Error {
  const e = err as NodeJS.ErrnoException
  return ferryError('FERRY_ERR_INVALID_ARG', `--tunnel-port ${port}: cannot listen on [::]:${port}: ${e.message}`, { cause: err, errno: e.code })
}
