import { join } from 'node:path'
import { liveWorkersCodec, u32Codec, u64Codec } from '../capture/map-layout'
import { isFerryError } from '../errors'
import { BpfLink, BpfMap, BpfObject, openNetns } from '../native'

// Which worker's listener takes a new connection on the tunnel port, decided in the
// kernel (bpf/tunnel_lookup.bpf.c): an sk_lookup program on the network namespace this
// process runs in (the node's), which hands each SYN for the port to a live worker's
// listener with BPF_SK_LOOKUP_F_NO_REUSEPORT, and refuses it when there is none. A
// process that joins the listeners' SO_REUSEPORT group, or binds a more specific address
// on the port, gets no connection.
//
// Not pinned: the link and maps live as long as this object (the agent). Once the agent
// is gone its listeners are gone too, and the port is free for anyone to bind — as it
// was before there were several listeners — so a pinned program would protect nothing
// more; it would only keep refusing SYNs for a port nobody serves.

const OBJECT = 'tunnel_lookup.bpf.o'
const PROG = 'ferry_tunnel_lookup'
const SOCKS = 'ferry_tunnel_socks'
const WORKERS = 'ferry_tunnel_workers'
const OWN_NETNS = '/proc/self/ns/net'

export class TunnelSteering {
  readonly port: number
  readonly #obj: BpfObject
  readonly #socks: BpfMap<number, bigint>
  readonly #workers: BpfMap<number, readonly number[]>
  readonly #link: BpfLink

  private constructor (port: number, obj: BpfObject, socks: BpfMap<number, bigint>, workers: BpfMap<number, readonly number[]>, link: BpfLink) {
    this.port = port
    this.#obj = obj
    this.#socks = socks
    this.#workers = workers
    this.#link = link
  }

  /**
   * Loads the program for `port` and attaches it to this process's netns, `live` workers
   * live and no listener yet (so the port's SYNs are refused until setListener). Throws
   * FERRY_ERR_BPF_LOAD, FERRY_ERR_BPF_ATTACH, FERRY_ERR_NETNS.
   */
  static attach (port: number, live: readonly number[], objectDir: string): TunnelSteering {
    const obj = BpfObject.open({ path: join(objectDir, OBJECT), rodata: { ferry_tunnel_port: port } })
    const opened: Array<{ close: () => void }> = [obj]
    try {
      const socks = new BpfMap(obj.mapFd(SOCKS), u32Codec, u64Codec)
      opened.push(socks)
      const workers = new BpfMap(obj.mapFd(WORKERS), u32Codec, liveWorkersCodec)
      opened.push(workers)
      workers.set(0, live)
      const netns = openNetns(OWN_NETNS)
      let link: BpfLink
      try {
        link = obj.attachNetns(PROG, netns.fd)
      } finally {
        netns.close()
      }
      return new TunnelSteering(port, obj, socks, workers, link)
    } catch (err) {
      for (const o of opened.reverse()) o.close()
      throw err
    }
  }

  /** Worker `worker`'s listener (an fd on the port), or none. */
  setListener (worker: number, fd: number | null): void {
    if (fd !== null) {
      this.#socks.set(worker, BigInt(fd))
      return
    }
    try {
      this.#socks.delete(worker)
    } catch (err) {
      // A SOCKMAP reports an empty index (never set, or its socket closed) as EINVAL.
      if (!isFerryError(err) || err.errno !== 'EINVAL') throw err
    }
  }

  setLive (ids: readonly number[]): void { this.#workers.set(0, ids) }

  /** Detaches the program: the port's lookups are the kernel's own again. */
  close (): void {
    this.#link.close()
    this.#socks.close()
    this.#workers.close()
    this.#obj.close()
  }
}
