import { Counter, Gauge, type Registry } from 'prom-client'

// The sockmap shortcut of the plaintext pod <-> proxy hops (bpf/sk_msg.bpf.c), as the
// kernel counted it:
//   ferry_sockmap_enabled{reason}            1 when sk_msg is attached; 0 with the
//                                            FERRY_ERR_* code that kept it off (e.g.
//                                            FERRY_ERR_SOCKMAP_BTF: the kernel's BTF lacks
//                                            a field it reads)
//   ferry_sockmap_messages_total{path}       messages sent on hops' sockets: from_pod,
//                                            to_pod (by the shortcut), tcp (left to TCP)
//   ferry_sockmap_bytes_total{direction}     bytes the shortcut carried: from_pod, to_pod
// The counts live in a pinned map and survive agent restarts; each scrape reads them.

export const SOCKMAP_METRICS = Object.freeze({
  enabled: 'ferry_sockmap_enabled',
  messages: 'ferry_sockmap_messages_total',
  bytes: 'ferry_sockmap_bytes_total'
})

export interface SockmapReport {
  readonly status: { readonly enabled: boolean, readonly code?: string }
  readonly stats: { readonly fromPodMsgs: bigint, readonly fromPodBytes: bigint, readonly toPodMsgs: bigint, readonly toPodBytes: bigint, readonly tcpMsgs: bigint }
}

export function registerSockmapMetrics (registry: Registry, read: () => SockmapReport | null): void {
  /* eslint-disable no-new */
  new Gauge({
    name: SOCKMAP_METRICS.enabled,
    help: 'Whether the sockmap shortcut of the pod <-> proxy hops is on (1) or off (0, reason: the FERRY_ERR_* code that kept it off)',
    labelNames: ['reason'],
    registers: [registry],
    collect () {
      this.reset()
      const r = read()
      if (r !== null) this.set({ reason: r.status.enabled ? '' : r.status.code ?? '' }, r.status.enabled ? 1 : 0)
    }
  })
  new Counter({
    name: SOCKMAP_METRICS.messages,
    help: 'Messages sent on the sockets of the pod <-> proxy hops, by path: from_pod and to_pod (by the sockmap shortcut), tcp (left to TCP)',
    labelNames: ['path'],
    registers: [registry],
    collect () {
      this.reset()
      const r = read()
      if (r === null) return
      this.inc({ path: 'from_pod' }, Number(r.stats.fromPodMsgs))
      this.inc({ path: 'to_pod' }, Number(r.stats.toPodMsgs))
      this.inc({ path: 'tcp' }, Number(r.stats.tcpMsgs))
    }
  })
  new Counter({
    name: SOCKMAP_METRICS.bytes,
    help: 'Bytes the sockmap shortcut carried between the ends of the pod <-> proxy hops, by direction',
    labelNames: ['direction'],
    registers: [registry],
    collect () {
      this.reset()
      const r = read()
      if (r === null) return
      this.inc({ direction: 'from_pod' }, Number(r.stats.fromPodBytes))
      this.inc({ direction: 'to_pod' }, Number(r.stats.toPodBytes))
    }
  })
  /* eslint-enable no-new */
}
