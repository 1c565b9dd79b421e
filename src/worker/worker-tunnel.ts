import { secureContextsMade } from '../identity/tls-options'
import { NodeBufferBudget, type RefusalHook, SniIndex, TunnelAdmission, TunnelPool, type TunnelRequest, TunnelServer } from '../tunnel'
import type { Registry } from 'prom-client'
import { registerTunnelHeldMetric } from '../telemetry/tunnel-metrics'
import type { SvidStore } from './svid-store'

// A worker's ends of the mTLS tunnel: its own server (on its own listening socket of the
// tunnel port) and its own pool of sessions to peer nodes. The node-wide bounds —
// unverified connections and handshakes per source (admission), the bytes streams may
// hold (buffer budget) — live in shared memory the main thread made (src/agent/node-tunnel.ts),
// so they hold for the node however many workers there are.

const CLOSE_GRACE_MS = 1000

export interface WorkerTunnelOptions {
  readonly shared: { readonly admission: SharedArrayBuffer, readonly buffers: SharedArrayBuffer }
  readonly svids: SvidStore
  readonly onStream: (req: TunnelRequest) => void
  readonly onRefused: RefusalHook
  readonly firstByteTimeoutMs?: number
  /** The worker's metrics registry: the bytes its streams hold are its own gauge (summed over workers at scrape). */
  readonly registry?: Registry
}

export class WorkerTunnel {
  readonly pool: TunnelPool
  private readonly server: TunnelServer
  /** This thread's view of the node's budget: its sessions are this worker's. */
  private readonly budget: NodeBufferBudget
  private readonly names = new SniIndex()
  private served = new Set<string>()
  private port = 0

  constructor (o: WorkerTunnelOptions) {
    const admission = TunnelAdmission.attach(o.shared.admission)
    const budget = this.budget = NodeBufferBudget.attach(o.shared.buffers)
    if (o.registry !== undefined) registerTunnelHeldMetric(o.registry, () => budget.heldBytes())
    this.pool = new TunnelPool({ onRefused: o.onRefused, bufferBudget: budget })
    this.server = new TunnelServer({
      selectSvid: (sni) => {
        const id = this.names.identityOf(sni)
        return id === null ? null : o.svids.svidFor(id)
      },
      onStream: o.onStream,
      onRefused: o.onRefused,
      admission,
      bufferBudget: budget,
      ...(o.firstByteTimeoutMs === undefined ? {} : { firstByteTimeoutMs: o.firstByteTimeoutMs })
    })
  }

  /** Serves the tunnel port: a listening fd the main thread made, or an address (test platforms). */
  async listen (target: { fd: number, backlog: number } | { host: string, port: number, backlog: number }): Promise<number> {
    this.port = (await this.server.listen(target)).port
    return this.port
  }

  /** The identities the server answers for: exactly these. */
  serve (identities: readonly string[]): void {
    const wanted = new Set(identities)
    for (const id of wanted) if (!this.served.has(id)) this.names.add(id)
    for (const id of this.served) if (!wanted.has(id)) this.names.delete(id)
    this.served = wanted
  }

  /** heldBytes: what this worker's streams hold now (walks them: for diagnostics); secureContexts: the SecureContexts this thread has made (one per SVID a session presented). */
  stats (): { port: number, server: ReturnType<TunnelServer['stats']>, pool: ReturnType<TunnelPool['stats']>, heldBytes: number, secureContexts: number } {
    return { port: this.port, server: this.server.stats(), pool: this.pool.stats(), heldBytes: this.budget.heldBytes(), secureContexts: secureContextsMade() }
  }

  /**
   * After a handoff: the server stops taking connections and its sessions get GOAWAY
   * (peers open new ones, which reach the new agent); their streams go on until the
   * agent's drain ends them (data-plane.ts `closeConnections`). The pool stays:
   * connections this worker accepted still open streams through it.
   */
  stopServing (): void {
    this.server.stopAccepting()
  }

  /** Stops taking new connections; sessions get GOAWAY and their streams go on for the grace period. */
  async close (graceMs = CLOSE_GRACE_MS): Promise<void> {
    await Promise.all([this.server.close(graceMs), this.pool.close(graceMs)])
  }
}
