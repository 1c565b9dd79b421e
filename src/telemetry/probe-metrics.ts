import { Counter, type Registry } from 'prom-client'

// ferry_kubelet_probes_total{namespace,pod,result}: the kubelet's connections to this
// node's enrolled pods as sk_lookup handled them (bpf/sk_lookup.bpf.c):
//   admitted        to a port the pod's probes name: passed straight to the application
//   not_probe_port  to any other port: steered to the proxy like all plaintext (STRICT
//                   pods refuse it: istio_tcp_connections_closed_total{reporter="destination",response_flags="NR"})
//   expired         recorded longer ago than the freshness bound: steered to the proxy
// The counts live in the kernel, per pod slot, and survive agent restarts; each scrape
// reads them and replaces the counter's series, so a pod that left has no series any
// more (no label growth as pods come and go) and a pod's counts start at 0 when it is
// enrolled.

export const PROBE_METRIC = 'ferry_kubelet_probes_total'

export interface PodProbeCounts {
  readonly namespace: string
  readonly pod: string
  readonly admitted: number
  readonly notProbePort: number
  readonly expired: number
}

export function registerProbeMetrics (registry: Registry, read: () => Iterable<PodProbeCounts>): void {
  // eslint-disable-next-line no-new
  new Counter({
    name: PROBE_METRIC,
    help: 'Connections the kubelet made to this node\'s enrolled pods, by result: admitted (to a probe port, straight to the application), not_probe_port and expired (steered to the proxy)',
    labelNames: ['namespace', 'pod', 'result'],
    registers: [registry],
    collect () {
      this.reset()
      for (const c of read()) {
        this.inc({ namespace: c.namespace, pod: c.pod, result: 'admitted' }, c.admitted)
        this.inc({ namespace: c.namespace, pod: c.pod, result: 'not_probe_port' }, c.notProbePort)
        this.inc({ namespace: c.namespace, pod: c.pod, result: 'expired' }, c.expired)
      }
    }
  })
}
