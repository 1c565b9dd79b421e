import { isIP } from 'node:net'
import { join } from 'node:path'
import { ipKeyCodec, type SynStats, synStatsCodec, u32Codec, u8Codec } from '../capture/map-layout'
import { checkLiveWorkers, checkWorkerId } from '../capture/workers'
import { ferryError } from '../errors'
import { attachSocketFilter, BpfMap, BpfObject, REPO_ROOT, tcpListen } from '../native'
import { TunnelSteering } from './steering'

// Admission on the tunnel port in the kernel (bpf/tunnel_syn.bpf.c): a socket filter
// that drops the SYNs of a source over its handshake rate before TCP makes anything of
// them, so a flood from one source never reaches accept() and costs the agent nothing.
// One program and one table of sources serve every listener made here (listen() may be
// called once per data-path worker), so the rate holds for the node. Its maps are not
// pinned: the table is soft state, and the counters restart with the agent.
//
// Peer nodes' addresses (setPeers) are exempt: a SYN does not prove its source, and
// without the exemption anyone able to spoof a peer's address could spend its bucket
// and hold its new sessions back (bpf/tunnel_syn.bpf.c says why that costs nothing).
//
// The listeners also get TCP_DEFER_ACCEPT: a connection reaches accept() when its first
// data arrives, or — silent — only once the kernel's defer period is over (docs/tunnel.md,
// "Kernel facts").
//
// Listeners made with reusePort share one port, one per data-path worker. The first of
// them attaches the port's worker choice (./steering.ts): from then on the kernel hands
// each new connection on that port to a live worker's listener (setListener,
// setLiveWorkers; worker 0 alone is live until told otherwise) and to nothing else.

export interface SynLimits {
  /** SYNs per second per source (an IPv4 address, or an IPv6 /64), on average. */
  readonly perSecond: number
  /** … and at once. */
  readonly burst: number
}

/** What the filter did with the SYNs that reached the listeners, since it was loaded. */
export interface SynCounts {
  /** Within their source's rate: passed on to TCP. */
  readonly admitted: number
  /** Over their source's rate: dropped (the client's kernel retransmits them). */
  readonly dropped: number
  /** Not judged (unreadable header, table contended): passed on; the user-space gate judges the connection. */
  readonly untracked: number
  /** From a peer node's address (setPeers): passed on, not counted against a rate. */
  readonly peer: number
}

export interface SynListenOptions {
  readonly family: 4 | 6
  readonly address: string
  readonly port: number
  readonly backlog: number
  /** Family 6: accept IPv4 clients too (v4-mapped). */
  readonly dualStack: boolean
  /** TCP_DEFER_ACCEPT (the kernel rounds it up to its SYN-ACK retransmission schedule: 1, 3, 7, 15 … s). */
  readonly deferAcceptSeconds: number
  /**
   * SO_REUSEPORT, one listener per data-path worker on the port, and the port's worker
   * choice in the kernel. Needs a wildcard address (the choice covers every local address
   * of the port) and a fixed port, the same for every such listener of this filter.
   */
  readonly reusePort?: boolean
}

const WILDCARD = new Set(['::', '0.0.0.0'])

const OBJECT = 'tunnel_syn.bpf.o'
const PROG = 'ferry_tunnel_syn'
const STATS = 'ferry_syn_stats'
const PEERS = 'ferry_syn_peers'
const NS_PER_SECOND = 1_000_000_000

export class SynFilter {
  #obj: BpfObject | null
  readonly #stats: BpfMap<number, SynStats>
  readonly #peers: BpfMap<string, number>
  /** The addresses in ferry_syn_peers, as written. */
  #peerSet = new Set<string>()
  readonly #objectDir: string
  /** The port's worker choice, once a reusePort listener exists. */
  #steering: TunnelSteering | null = null
  #live: readonly number[] = [0]

  private constructor (readonly limits: SynLimits, obj: BpfObject, objectDir: string) {
    this.#obj = obj
    this.#objectDir = objectDir
    const maps: Array<BpfMap<any, any>> = []
    try {
      this.#stats = new BpfMap(obj.mapFd(STATS), u32Codec, synStatsCodec)
      maps.push(this.#stats)
      this.#peers = new BpfMap(obj.mapFd(PEERS), ipKeyCodec, u8Codec)
    } catch (err) {
      for (const m of maps) m.close()
      obj.close()
      throw err
    }
  }

  /** Loads the filter with these limits. Throws FERRY_ERR_BPF_LOAD (or FERRY_ERR_NATIVE_MISSING when not built). */
  static load (limits: SynLimits, objectDir: string = join(REPO_ROOT, 'build', 'bpf')): SynFilter {
    checkLimit('perSecond', limits.perSecond, 1, 1000)
    checkLimit('burst', limits.burst, 1, 1 << 16)
    const interval = Math.round(NS_PER_SECOND / limits.perSecond)
    const obj = BpfObject.open({
      path: join(objectDir, OBJECT),
      rodata: { ferry_syn_interval_ns: interval, ferry_syn_tolerance_ns: (limits.burst - 1) * interval }
    })
    return new SynFilter(Object.freeze({ perSecond: limits.perSecond, burst: limits.burst }), obj, objectDir)
  }

  /**
   * A listening socket in this process's netns with the filter and TCP_DEFER_ACCEPT in
   * place before listen(); returns its fd (Node serves it with server.listen({ fd })).
   * Throws FERRY_ERR_LISTEN with the errno (EADDRINUSE, EAFNOSUPPORT …) or FERRY_ERR_BPF_ATTACH;
   * with reusePort also FERRY_ERR_BPF_LOAD, and FERRY_ERR_INVALID_ARG for another port
   * than the first reusePort listener's, port 0 or an address that is not a wildcard.
   */
  listen (o: SynListenOptions): number {
    const filterProgFd = this.live().progFd(PROG)
    if (o.reusePort !== true) return tcpListen({ ...o, filterProgFd })
    if (!WILDCARD.has(o.address)) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel listener with reusePort: the address must be :: or 0.0.0.0 (the worker choice covers every address of the port), got ${o.address}`)
    if (o.port === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'tunnel listener with reusePort: the port must be fixed (port 0 would give each listener its own)')
    const steering = this.#steering
    if (steering !== null && steering.port !== o.port) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel listeners with reusePort share one port (${steering.port}), got ${o.port}`)
    // The choice is in place before the first listener exists: no moment when the kernel's
    // reuseport selection decides alone.
    const fresh = steering === null ? TunnelSteering.attach(o.port, this.#live, this.#objectDir) : null
    try {
      const fd = tcpListen({ ...o, filterProgFd, reusePort: true })
      if (fresh !== null) this.#steering = fresh
      return fd
    } catch (err) {
      fresh?.close()
      throw err
    }
  }

  /**
   * A listener on `port` handed over by the agent before us (src/handoff): it gets this
   * filter (replacing that agent's, whose peers and rate table are no longer kept) and,
   * for `reusePort`, this port's worker choice is attached as for listen(). Returns `fd`.
   */
  adopt (fd: number, o: { port: number, reusePort: boolean }): number {
    attachSocketFilter(fd, this.live().progFd(PROG))
    if (!o.reusePort || this.#steering !== null) return fd
    if (o.port === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'tunnel listener with reusePort: the port must be fixed')
    this.#steering = TunnelSteering.attach(o.port, this.#live, this.#objectDir)
    return fd
  }

  /**
   * Worker `worker`'s listener (an fd from listen() with reusePort) takes its share of
   * the port's new connections while the worker is live; null takes it out (do so, or
   * leave the live set, before the listener closes). Throws FERRY_ERR_INVALID_ARG before
   * any reusePort listener exists or for a bad worker id, FERRY_ERR_BPF_MAP if the kernel
   * refuses the fd (not a listening TCP socket).
   */
  setListener (worker: number, fd: number | null): void {
    checkWorkerId(worker)
    if (fd !== null && (!Number.isInteger(fd) || fd < 0)) throw ferryError('FERRY_ERR_INVALID_ARG', `not an fd: ${String(fd)}`)
    this.live()
    if (this.#steering === null) throw ferryError('FERRY_ERR_INVALID_ARG', 'no tunnel listener with reusePort: nothing to choose among')
    this.#steering.setListener(worker, fd)
  }

  /**
   * The workers whose listeners take new connections on the port (initially [0]); a
   * connection goes to one of them by a hash of the client's address and port, to the
   * next live one when that one has no listener. None: new connections are refused (RST).
   * Connections already queued on a listener stay there to be accepted.
   */
  setLiveWorkers (ids: readonly number[]): void {
    const live = checkLiveWorkers(ids)
    this.live()
    this.#steering?.setLive(live)
    this.#live = live
  }

  /**
   * The peer nodes' addresses, exactly these (IPv4 or IPv6, whole addresses): their SYNs
   * are not rate-limited here. Addresses that are not IPs are skipped. Changes only what
   * differs from the last call.
   */
  setPeers (addresses: Iterable<string>): void {
    this.live()
    const wanted = new Set<string>()
    for (const a of addresses) if (isIP(a) !== 0) wanted.add(a)
    for (const a of this.#peerSet) if (!wanted.has(a)) this.#peers.delete(a)
    for (const a of wanted) if (!this.#peerSet.has(a)) this.#peers.set(a, 1)
    this.#peerSet = wanted
  }

  /** The kernel's counters, read now. */
  counts (): SynCounts {
    this.live()
    const s = this.#stats.get(0)
    return s === null ? { admitted: 0, dropped: 0, untracked: 0, peer: 0 } : { admitted: Number(s.admitted), dropped: Number(s.dropped), untracked: Number(s.untracked), peer: Number(s.peer) }
  }

  /**
   * Unloads the program once no listener holds it (listeners keep their filter until they
   * close), and detaches the port's worker choice at once: close the listeners first.
   */
  close (): void {
    this.#steering?.close()
    this.#steering = null
    this.#stats.close()
    this.#peers.close()
    this.#obj?.close()
    this.#obj = null
  }

  private live (): BpfObject {
    if (this.#obj === null) throw ferryError('FERRY_ERR_INVALID_ARG', 'the tunnel SYN filter is closed')
    return this.#obj
  }
}

function checkLimit (name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel SYN filter: ${name} is ${String(value)}: expected an integer from ${min} to ${max}`)
  }
}
