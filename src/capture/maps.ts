import { BpfMap, type Codec } from '../native'
import {
  dstCodec, exclKeyCodec, ipKeyCodec, liveWorkersCodec, origKeyCodec, podCodec, probePortKeyCodec, probeStatsCodec, sockKeyCodec, sockmapStatsCodec, spliceCodec, u32Codec, u64Codec, u8Codec, uidKeyCodec,
  type Dst, type ExclKey, type OrigKey, type PodValue, type ProbePortKey, type ProbeStats, type SockKey, type SockmapStats, type Splice
} from './map-layout'
import type { Programs } from './programs'

// Typed views of the pinned maps that user space reads or writes (bpf/ferry_maps.h).

export class CaptureMaps {
  readonly pods: BpfMap<bigint, PodValue>
  readonly podIps: BpfMap<string, PodValue>
  readonly excl: BpfMap<ExclKey, number>
  readonly origDst: BpfMap<OrigKey, Dst>
  /** SOCKMAP: write a listening socket's fd, read back its socket cookie. */
  readonly inbound: BpfMap<number, bigint>
  /** ARRAY of one (key 0): the workers that take new inbound connections. */
  readonly workers: BpfMap<number, readonly number[]>
  readonly slots: BpfMap<string, number>
  /** SOCKHASH of the plaintext hops' ends: write a connected socket's fd. */
  readonly socks: BpfMap<SockKey, bigint>
  /** Same-node connections spliced app to app, by a pod's end. */
  readonly splice: BpfMap<SockKey, Splice>
  /** Ports each pod's probes name, by slot. */
  readonly probePorts: BpfMap<ProbePortKey, number>
  /** ARRAY by slot: what sk_lookup did with the kubelet's connections to the pod. */
  readonly probeStats: BpfMap<number, ProbeStats>
  /** ARRAY of one (key 0): what sk_msg did with the hops' messages. */
  readonly sockmapStats: BpfMap<number, SockmapStats>

  constructor (programs: Programs) {
    const opened: Array<{ close: () => void }> = []
    const open = <K, V>(name: string, k: Codec<K>, v: Codec<V>): BpfMap<K, V> => {
      try {
        const m = new BpfMap(programs.mapFd(name), k, v)
        opened.push(m)
        return m
      } catch (err) {
        for (const m of opened) m.close()
        throw err
      }
    }
    this.pods = open('ferry_pods', u64Codec, podCodec)
    this.podIps = open('ferry_pod_ips', ipKeyCodec, podCodec)
    this.excl = open('ferry_excl', exclKeyCodec, u8Codec)
    this.origDst = open('ferry_orig_dst', origKeyCodec, dstCodec)
    this.inbound = open('ferry_inbound', u32Codec, u64Codec)
    this.workers = open('ferry_workers', u32Codec, liveWorkersCodec)
    this.slots = open('ferry_slots', uidKeyCodec, u32Codec)
    this.socks = open('ferry_socks', sockKeyCodec, u64Codec)
    this.splice = open('ferry_splice', sockKeyCodec, spliceCodec)
    this.probePorts = open('ferry_probe_ports', probePortKeyCodec, u8Codec)
    this.probeStats = open('ferry_probe_stats', u32Codec, probeStatsCodec)
    this.sockmapStats = open('ferry_sockmap_stats', u32Codec, sockmapStatsCodec)
  }

  /** How many pods the maps can hold (ferry_pods' max_entries). */
  get capacity (): number { return this.pods.info.maxEntries }

  close (): void {
    for (const m of [this.pods, this.podIps, this.excl, this.origDst, this.inbound, this.workers, this.slots, this.socks, this.splice, this.probePorts, this.probeStats, this.sockmapStats]) m.close()
  }
}
