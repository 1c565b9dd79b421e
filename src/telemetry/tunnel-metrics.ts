import { Counter, Gauge, type Registry } from 'prom-client'

// The tunnel's bounds as gauges on the agent's registry, read when /metrics is scraped:
// unverified connections against their node-wide limit (admission), and the buffer
// budget: bytes reserved by tunnel streams (of which leased by backed-up streams) and the
// budget itself (node-wide, in shared memory), and bytes the streams hold now (each
// worker's own gauge, summed at scrape).
// (Refusals are ferry_tunnel_refusals_total, in metrics.ts.) With kernel admission on the
// tunnel port (src/tunnel-syn), what the kernel did with the SYNs that reached it:
// ferry_tunnel_kernel_syns_total{result="admitted"|"dropped"|"untracked"|"peer"}, read from the
// kernel's counters at scrape (the dropped ones also count in ferry_tunnel_refusals_total
// as stage "syn", reason "rate-limit"); "peer": from a peer node's address, exempt.

export const TUNNEL_METRIC_NAMES = Object.freeze({
  pending: 'ferry_tunnel_pending_connections',
  pendingLimit: 'ferry_tunnel_pending_connections_limit',
  reserved: 'ferry_tunnel_buffer_reserved_bytes',
  stalled: 'ferry_tunnel_buffer_stalled_bytes',
  held: 'ferry_tunnel_buffer_held_bytes',
  budget: 'ferry_tunnel_buffer_budget_bytes',
  kernelSyns: 'ferry_tunnel_kernel_syns_total'
})

/** What the kernel did with SYNs to the tunnel port (src/tunnel-syn SynCounts). */
export interface KernelSynCounts { readonly admitted: number, readonly dropped: number, readonly untracked: number, readonly peer: number }

export interface TunnelGauges {
  readonly pending: number
  readonly pendingLimit: number
  readonly reservedBytes: number
  readonly stalledBytes: number
  readonly budgetBytes: number
}

export function registerTunnelMetrics (registry: Registry, read: () => TunnelGauges): void {
  const registers = [registry]
  const gauge = (name: string, help: string, pick: (g: TunnelGauges) => number): void => {
    // eslint-disable-next-line no-new
    new Gauge({ name, help, registers, collect () { this.set(pick(read())) } })
  }
  gauge(TUNNEL_METRIC_NAMES.pending, 'Connections on the tunnel port accepted and not yet verified, node-wide', (g) => g.pending)
  gauge(TUNNEL_METRIC_NAMES.pendingLimit, 'The node-wide bound on unverified tunnel connections (a share of the open-files limit)', (g) => g.pendingLimit)
  gauge(TUNNEL_METRIC_NAMES.reserved, 'Bytes reserved by tunnel streams, node-wide: open streams\' receive windows and overheads, and the buffers of backed-up streams', (g) => g.reservedBytes)
  gauge(TUNNEL_METRIC_NAMES.stalled, 'Of the reserved bytes, those leased by tunnel streams whose receive or send side is backed up, node-wide', (g) => g.stalledBytes)
  gauge(TUNNEL_METRIC_NAMES.budget, 'The node-wide tunnel buffer budget', (g) => g.budgetBytes)
}

/**
 * ferry_tunnel_buffer_held_bytes on a data-path worker's registry: what its own streams
 * hold (only the thread that owns a stream can read its buffers); /metrics sums the workers'.
 */
export function registerTunnelHeldMetric (registry: Registry, read: () => number): void {
  // eslint-disable-next-line no-new
  new Gauge({ name: TUNNEL_METRIC_NAMES.held, help: 'Bytes the tunnel streams hold now (received and not yet written on, or the reverse)', registers: [registry], collect () { this.set(read()) } })
}

/** ferry_tunnel_kernel_syns_total, read at scrape; no series while `read` gives null (no kernel admission). */
export function registerKernelSynMetrics (registry: Registry, read: () => KernelSynCounts | null): void {
  // eslint-disable-next-line no-new
  new Counter({
    name: TUNNEL_METRIC_NAMES.kernelSyns,
    help: 'SYNs to the tunnel port as the kernel judged them before any socket work: admitted (within their source\'s rate), dropped (over it), untracked (not judged; the user-space gate judges the connection), peer (from a peer node\'s address: not rate-limited in the kernel)',
    labelNames: ['result'],
    registers: [registry],
    collect () {
      this.reset()
      const c = read()
      if (c === null) return
      this.inc({ result: 'admitted' }, c.admitted)
      this.inc({ result: 'dropped' }, c.dropped)
      this.inc({ result: 'untracked' }, c.untracked)
      this.inc({ result: 'peer' }, c.peer)
    }
  })
}
