import { ferryError } from '../errors'
import { TUNNEL_DEFAULTS } from './defaults'

// How many bytes a peer can make this node hold, bounded per node (and per session).
//
// What a tunnel stream makes the node hold comes in two parts, each reserved when it can
// arise:
//
//   open      HTTP/2 flow control bounds what a peer may send a stream that is not read:
//             in Node only the *stream* window does (Node acknowledges the connection
//             window as data arrives, read or not). So an open stream reserves its receive
//             window, plus `streamOverheadBytes` (16 KiB) for what it costs besides
//             buffers — its objects on this node: HTTP/2 stream, TunnelStream, the pod's
//             socket, the proxy's record (measured: 13–16 KiB of RSS per connection) — so
//             the budget bounds the number of streams too (session-buffers.ts). At the
//             4 KiB floor a stream reserves 20 KiB.
//   stalls    the stream's own buffers — Node's HTTP/2 stream, the TunnelStream, the
//             socket to the pod — hold data only while a side is backed up: its pod does
//             not read (receive side), or the peer's window is closed (send side). Their
//             sizes are Node's (16 KiB high-water marks, 64 KiB socket reads, 16 KiB TLS
//             records), not the window's, so a backed-up side holds up to
//             `receiveStallBytes` (80 KiB) or `sendStallBytes` (160 KiB) whatever its
//             window (defaults.ts has the sums; the TunnelStream keeps one piece each way,
//             tunnel-stream.ts). Reserving that for every open stream would cap a node at
//             about 800 streams, and reserving nothing would leave the sum to per-stream
//             backpressure alone (10,000 × 240 KiB = 2.3 GiB); instead a side that has been
//             backed up for `stallLeaseAfterMs` (50 ms) *leases* it until it drains. A
//             side that drains sooner — a moving stream's chunk in transit — costs nothing:
//             what is in transit is bounded by the agent's own read rate times 50 ms.
//
// So what the node holds is at most Σ open (window + overhead) + Σ leases ≤ nodeBytes, plus
// what is in transit:
//
//   - open reservations take at most `openBytes` (80 % of the budget): the rest is always
//     there for leases. A session's at most `sessionBytes`. A stream that does not fit is
//     refused: REFUSED_STREAM on the server (the client retries), FERRY_ERR_TUNNEL_BUSY
//     `buffer-budget` from the pool — unless a smaller window is on its way, which the
//     stream waits for on either end (server-session.ts, client-session.ts). An open may reset streams backed up for
//     `stallGraceMs` (1 s) or more to make room: stalls cannot keep new streams out;
//   - a lease that finds no room makes room by resetting this thread's backed-up streams,
//     the one backed up longest first: a stream that is moving (it drained within the last
//     `stallGraceMs`, or opened that recently) may have any other reset; one that is not
//     only those backed up for the grace or longer. If that is not enough, the stream that
//     backed up is reset itself. A reset is RST_STREAM CONNECT_ERROR, the relay resets the
//     TCP side with FERRY_ERR_TUNNEL_BUSY, and the refusal is `stream` / `buffer-stall`.
//     Under pressure a stream that stops draining loses its connection rather than the
//     node its memory, and streams that keep moving keep theirs;
//   - so that the budget holds many streams, a window is small until a stream needs more:
//     every session starts at the floor (minWindow, 4 KiB: 20 KiB reserved a stream) and
//     grows its window while a stream of it is held back by it, while the session's and
//     the node's budgets have room (a raise is reserved before it is sent), and shrinks
//     back without that demand (session-buffers.ts); capped at
//         clamp(pow2floor(min(demand, sessionBytes / 2n − streamOverheadBytes)), minWindow, maxWindow)
//     (n streams on the session). When a stream does not fit, every grown window of the
//     node drops to the floor for PRESSURE_HOLD_MS (pressure(): on this thread at once, on
//     the others within LOAD_WATCH_MS). So ten thousand idle streams take 4 KiB windows,
//     and a few bulk ones 4 MiB while there is room. A change is one SETTINGS frame, at
//     most one outstanding per session.
//
// With the DaemonSet's 512 Mi the agent's budget is 256 MiB (memory-limit.ts): 204.8 MiB
// for open streams, at 20 KiB each at the floor 10,485 streams; 51.2 MiB (at least) for
// leases, 655 receive sides or 327 send sides backed up at once.
//
// A lower window applies to every stream of the session once the peer acknowledges the
// SETTINGS (RFC 9113 §6.9.2); until then the peer may still use the old one, so a new
// stream reserves the larger of the two. At the acknowledgement each stream's reservation
// drops to the new window or what it already holds unread, whichever is larger (HTTP/2
// does not take back bytes already sent). A raise is reserved for every stream before it
// is sent. A peer that does not acknowledge within `ackTimeoutMs` is cut off (as RFC 9113
// §6.5.3 allows). Nothing is reserved per byte: reservations change when a stream opens or
// closes, when a window changes, and when a side of a stream backs up or drains.
//
// What this counts is bytes. Node hands received DATA to JavaScript as slices of the TLS
// record it arrived in, and keeps each slice as one object: a peer that sends a stream its
// pod does not read in 1-byte DATA frames makes each unread byte cost an object (~110 B)
// and, if it pads each record with other frames, the whole record (16 KiB). The window
// bounds the bytes, not the frames; docs/security.md (Limits) has the figures.
//
// The node's counters live in a SharedArrayBuffer (NodeBufferBudget), so the bound holds
// for the node when sessions live on several worker threads; the list of backed-up streams
// (which ones to reset) is each thread's own.

export interface BufferLimits {
  /** Every tunnel stream of the node together: open reservations and stall leases. */
  readonly nodeBytes: number
  /** What open streams (window + overhead) may reserve of nodeBytes; the rest is for stalls. */
  readonly openBytes: number
  /** One session's open streams together. */
  readonly sessionBytes: number
  /** Smallest receive window a stream is given. */
  readonly minWindowBytes: number
  /** Largest (the configured stream window). */
  readonly maxWindowBytes: number
  /** What an open stream costs besides its buffers. */
  readonly streamOverheadBytes: number
  /** What a stream's own buffers hold while its receive side is backed up, besides its window. */
  readonly receiveStallBytes: number
  /** … while its send side is backed up. */
  readonly sendStallBytes: number
  /** Backed up this long, a stream may be reset to make room for another's lease. */
  readonly stallGraceMs: number
}

export type StallSide = 'receive' | 'send'

/** A stream in the budget's list of backed-up streams (session-buffers.ts' StreamBuffers). */
export interface StallEntry {
  /** Its sides backed up now (RECEIVE | SEND bits), leased or about to be. */
  backedUp: number
  /** KiB leased for each side now (0: none). */
  receiveKiB: number
  sendKiB: number
  /** Since when a side of it has been backed up (ms). */
  since: number
  /** When it last drained, or opened (ms): it is moving while that is recent. */
  drainedAt: number
  prev: StallEntry | null
  next: StallEntry | null
  /** Resets the stream: its buffers do not fit. Its leases are already returned. */
  evict: () => void
}

/** What the budget needs of a session of its thread (session-buffers.ts' SessionBuffers). */
export interface BudgetSessionRef {
  rebalance: () => void
  held: () => number
}

const SIDE_BIT: Record<StallSide, number> = { receive: 1, send: 2 }

/** `s`'s `side` is backed up and has no lease yet. */
function unleased (s: StallEntry, side: StallSide): boolean {
  return (s.backedUp & SIDE_BIT[side]) !== 0 && (side === 'receive' ? s.receiveKiB : s.sendKiB) === 0
}

const KiB = 1024
/** The smallest window the budget accepts: below a KiB, frames cost more than they carry. */
const MIN_WINDOW_FLOOR = 1024
const MAGIC = 0x46544e43 // "FTNC"
const N_MAGIC = 0
const N_NODE_KIB = 1
const N_OPEN_MAX_KIB = 2
const N_SESSION_KIB = 3
const N_MIN_WINDOW = 4
const N_MAX_WINDOW = 5
const N_OVERHEAD_KIB = 6
const N_RECEIVE_STALL_KIB = 7
const N_SEND_STALL_KIB = 8
const N_STALL_GRACE_MS = 9
/** KiB reserved now, everything (open reservations and stall leases). */
const N_RESERVED_KIB = 10
/** … of which by open streams. */
const N_OPEN_KIB = 11
const N_STREAMS = 12
/** Times a stream did not fit, since start: every thread's grown windows shrink when it moves. */
const N_PRESSURE = 13
const N_SLOTS = 14

export const kib = (bytes: number): number => Math.ceil(bytes / KiB)

/** Adds `k` to a counter if it stays within `max`. */
function addWithin (view: Int32Array, slot: number, k: number, max: number): boolean {
  for (;;) {
    const cur = Atomics.load(view, slot)
    if (cur + k > max) return false
    if (Atomics.compareExchange(view, slot, cur, cur + k) === cur) return true
  }
}

/** The node's budget: limits and what is reserved, in shared memory; and this thread's backed-up streams. */
export class NodeBufferBudget {
  readonly limits: BufferLimits
  private readonly view: Int32Array
  /** This thread's sessions, re-balanced when a stream does not fit (pressure()). */
  private readonly sessions = new Set<BudgetSessionRef>()
  /** This thread's backed-up streams, the longest backed up first. */
  private oldest: StallEntry | null = null
  private newest: StallEntry | null = null
  /** Leases for streams backed up long enough, while any is backed up. */
  private leaseTimer: NodeJS.Timeout | null = null
  /** Streams of this thread reset for want of room for their buffers, since start. */
  evicted = 0

  /** `now`: the clock of stall ages (tests). */
  private constructor (readonly buffer: SharedArrayBuffer, readonly now: () => number) {
    this.view = new Int32Array(buffer)
    if (this.view.length < N_SLOTS || this.view[N_MAGIC] !== MAGIC) throw ferryError('FERRY_ERR_INVALID_ARG', 'not a tunnel buffer budget')
    const v = this.view
    this.limits = Object.freeze({
      nodeBytes: v[N_NODE_KIB] * KiB,
      openBytes: v[N_OPEN_MAX_KIB] * KiB,
      sessionBytes: v[N_SESSION_KIB] * KiB,
      minWindowBytes: v[N_MIN_WINDOW],
      maxWindowBytes: v[N_MAX_WINDOW],
      streamOverheadBytes: v[N_OVERHEAD_KIB] * KiB,
      receiveStallBytes: v[N_RECEIVE_STALL_KIB] * KiB,
      sendStallBytes: v[N_SEND_STALL_KIB] * KiB,
      stallGraceMs: v[N_STALL_GRACE_MS]
    })
    this.pressureSeen = Atomics.load(v, N_PRESSURE)
  }

  static create (limits: Partial<BufferLimits> = {}, now: () => number = Date.now): NodeBufferBudget {
    const nodeBytes = limits.nodeBytes ?? TUNNEL_DEFAULTS.nodeBufferBytes
    const l: BufferLimits = {
      nodeBytes,
      openBytes: limits.openBytes ?? Math.floor(nodeBytes * TUNNEL_DEFAULTS.openBufferShare),
      sessionBytes: limits.sessionBytes ?? Math.min(TUNNEL_DEFAULTS.sessionBufferBytes, nodeBytes),
      minWindowBytes: limits.minWindowBytes ?? TUNNEL_DEFAULTS.minStreamWindowBytes,
      maxWindowBytes: limits.maxWindowBytes ?? TUNNEL_DEFAULTS.streamWindowBytes,
      streamOverheadBytes: limits.streamOverheadBytes ?? TUNNEL_DEFAULTS.streamOverheadBytes,
      receiveStallBytes: limits.receiveStallBytes ?? TUNNEL_DEFAULTS.receiveStallBytes,
      sendStallBytes: limits.sendStallBytes ?? TUNNEL_DEFAULTS.sendStallBytes,
      stallGraceMs: limits.stallGraceMs ?? TUNNEL_DEFAULTS.stallGraceMs
    }
    for (const [name, v] of Object.entries(l)) {
      if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: ${name} is ${String(v)}: expected a positive integer`)
    }
    if (l.minWindowBytes < MIN_WINDOW_FLOOR || l.minWindowBytes > l.maxWindowBytes) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: minWindowBytes ${l.minWindowBytes} must be ${MIN_WINDOW_FLOOR} … maxWindowBytes (${l.maxWindowBytes})`)
    const one = l.minWindowBytes + l.streamOverheadBytes
    if (l.openBytes > l.nodeBytes || l.openBytes < one) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: openBytes ${l.openBytes} must hold one stream (${one}) and be at most nodeBytes (${l.nodeBytes})`)
    if (l.sessionBytes > l.nodeBytes || l.sessionBytes < one) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: sessionBytes ${l.sessionBytes} must hold one stream (${one}) and be at most nodeBytes (${l.nodeBytes})`)
    const buffer = new SharedArrayBuffer(N_SLOTS * 4)
    const view = new Int32Array(buffer)
    view[N_NODE_KIB] = Math.floor(l.nodeBytes / KiB)
    view[N_OPEN_MAX_KIB] = Math.floor(l.openBytes / KiB)
    view[N_SESSION_KIB] = Math.floor(l.sessionBytes / KiB)
    view[N_MIN_WINDOW] = l.minWindowBytes
    view[N_MAX_WINDOW] = l.maxWindowBytes
    view[N_OVERHEAD_KIB] = kib(l.streamOverheadBytes)
    view[N_RECEIVE_STALL_KIB] = kib(l.receiveStallBytes)
    view[N_SEND_STALL_KIB] = kib(l.sendStallBytes)
    view[N_STALL_GRACE_MS] = l.stallGraceMs
    Atomics.store(view, N_MAGIC, MAGIC)
    return new NodeBufferBudget(buffer, now)
  }

  static attach (buffer: SharedArrayBuffer, now: () => number = Date.now): NodeBufferBudget {
    return new NodeBufferBudget(buffer, now)
  }

  /** Bytes reserved node-wide now: open streams' and stall leases. */
  reservedBytes (): number { return Atomics.load(this.view, N_RESERVED_KIB) * KiB }

  /** Of reservedBytes(), open streams' windows and overheads. */
  openBytes (): number { return Atomics.load(this.view, N_OPEN_KIB) * KiB }

  /** Of reservedBytes(), the stall leases. */
  stalledBytes (): number { return (Atomics.load(this.view, N_RESERVED_KIB) - Atomics.load(this.view, N_OPEN_KIB)) * KiB }

  /** Bytes the streams of this thread's sessions hold now (both ends; walks every stream: for metrics and tests). */
  heldBytes (): number {
    let n = 0
    for (const s of this.sessions) n += s.held()
    return n
  }

  /** Tunnel streams of the node now (both ends). */
  streams (): number { return Atomics.load(this.view, N_STREAMS) }

  /**
   * Reserves `k` KiB for an open stream if the open share has room, and the node has room
   * or can make it by resetting this thread's streams backed up for stallGraceMs or more
   * (`evict`: a new stream may; a window that grows takes only the room there is).
   */
  reserveOpen (k: number, evict = true): boolean {
    if (!addWithin(this.view, N_OPEN_KIB, k, this.view[N_OPEN_MAX_KIB])) return false
    if (addWithin(this.view, N_RESERVED_KIB, k, this.view[N_NODE_KIB]) || (evict && this.evictFor(k, null, this.limits.stallGraceMs))) return true
    Atomics.sub(this.view, N_OPEN_KIB, k)
    return false
  }

  releaseOpen (k: number): void {
    Atomics.sub(this.view, N_OPEN_KIB, k)
    Atomics.sub(this.view, N_RESERVED_KIB, k)
  }

  /** A stream opened (counted node-wide). */
  streamOpened (): void { Atomics.add(this.view, N_STREAMS, 1) }

  streamClosed (): void { Atomics.sub(this.view, N_STREAMS, 1) }

  /**
   * `s`'s `side` backed up. If it still is after stallLeaseAfterMs, its buffers are leased
   * then, until unstall(): a side that backs up and drains sooner (a moving stream's chunk
   * in transit) costs nothing. Without room, this thread's backed-up streams are reset, the
   * longest backed up first, until the lease fits — any of them if `s` is moving, else
   * those backed up for stallGraceMs or more; failing that, `s` is.
   */
  stall (s: StallEntry, side: StallSide): void {
    const bit = SIDE_BIT[side]
    if ((s.backedUp & bit) !== 0) return
    if (s.backedUp === 0) this.link(s)
    s.backedUp |= bit
    if (this.leaseTimer === null) this.leaseTimer = setInterval(this.leaseBackedUp, LEASE_TICK_MS).unref()
  }

  /** `s`'s `side` drained: its lease, if it had one, is returned. */
  unstall (s: StallEntry, side: StallSide): void {
    const bit = SIDE_BIT[side]
    if ((s.backedUp & bit) === 0) return
    s.backedUp &= ~bit
    const k = side === 'receive' ? s.receiveKiB : s.sendKiB
    if (k > 0) {
      if (side === 'receive') s.receiveKiB = 0
      else s.sendKiB = 0
      Atomics.sub(this.view, N_RESERVED_KIB, k)
    }
    if (s.backedUp === 0) {
      this.unlink(s)
      s.drainedAt = this.now()
    }
  }

  /** Leases the buffers of every side backed up for stallLeaseAfterMs or more; every LEASE_TICK_MS while any is backed up, or now (tests). */
  readonly leaseBackedUp = (): void => {
    const due = this.now() - TUNNEL_DEFAULTS.stallLeaseAfterMs
    let s = this.oldest
    while (s !== null && s.since <= due) {
      if (unleased(s, 'receive') || unleased(s, 'send')) {
        const evicted = this.evicted
        if (unleased(s, 'receive')) this.lease(s, 'receive')
        if (unleased(s, 'send')) this.lease(s, 'send')
        // Resets took streams out of the list: go on from the oldest.
        if (this.evicted !== evicted) { s = this.oldest; continue }
      }
      s = s.next
    }
    if (this.oldest === null && this.leaseTimer !== null) {
      clearInterval(this.leaseTimer)
      this.leaseTimer = null
    }
  }

  /** Returns every lease of `s` (it closed, or is being reset). */
  dropLeases (s: StallEntry): void {
    this.unstall(s, 'receive')
    this.unstall(s, 'send')
  }

  /** Streams of this thread backed up now (diagnostics, tests). */
  stalledStreams (): number {
    let n = 0
    for (let e = this.oldest; e !== null; e = e.next) n++
    return n
  }

  /**
   * The window a session with `n` streams should announce now, for what its streams use:
   * `level`, the window they have grown to (minWindowBytes while they carry little,
   * session-buffers.ts). At most half the session's budget shared by its streams (room for
   * more streams on it), and the floor while the node is short of room: a stream did not
   * fit within the last PRESSURE_HOLD_MS, on any thread, and grown windows give it back.
   */
  targetWindow (n: number, level: number): number {
    const l = this.limits
    if (this.underPressure()) return l.minWindowBytes
    const share = l.sessionBytes / (2 * Math.max(n, 1)) - l.streamOverheadBytes
    return Math.min(l.maxWindowBytes, Math.max(l.minWindowBytes, pow2floor(Math.min(level, share))))
  }

  /** A stream did not fit: every session of the node lowers a grown window to the floor for a while (other threads within LOAD_WATCH_MS). */
  pressure (): void {
    this.pressureSeen = Atomics.add(this.view, N_PRESSURE, 1) + 1
    this.pressureUntil = Date.now() + PRESSURE_HOLD_MS
    this.rebalanceAll()
  }

  /** A stream did not fit within the last PRESSURE_HOLD_MS (here or, as last seen, on another thread). */
  underPressure (): boolean { return Date.now() < this.pressureUntil }

  /**
   * Every session of this thread re-checks its window; at most every REBALANCE_ALL_MS, a
   * call within that time runs at its end.
   */
  rebalanceAll (): void {
    const wait = this.lastRebalanceAll + REBALANCE_ALL_MS - Date.now()
    if (wait > 0) {
      this.rebalanceTimer ??= setTimeout(() => { this.rebalanceTimer = null; this.rebalanceAll() }, wait).unref()
      return
    }
    this.lastRebalanceAll = Date.now()
    for (const s of this.sessions) s.rebalance()
  }

  /** A session of this thread began (it re-balances with the others); while there are any, other threads' pressure is watched. */
  addSession (s: BudgetSessionRef): void {
    this.sessions.add(s)
    this.loadTimer ??= setInterval(this.watchPressure, LOAD_WATCH_MS).unref()
  }

  deleteSession (s: BudgetSessionRef): void {
    this.sessions.delete(s)
    if (this.sessions.size === 0 && this.loadTimer !== null) {
      clearInterval(this.loadTimer)
      this.loadTimer = null
    }
  }

  /** A stream did not fit on another thread since this one last looked: its grown windows shrink too. */
  private readonly watchPressure = (): void => {
    const seq = Atomics.load(this.view, N_PRESSURE)
    if (seq === this.pressureSeen) return
    this.pressureSeen = seq
    this.pressureUntil = Date.now() + PRESSURE_HOLD_MS
    this.rebalanceAll()
  }

  private lastRebalanceAll = 0
  private pressureSeen = 0
  private pressureUntil = 0
  private rebalanceTimer: NodeJS.Timeout | null = null
  private loadTimer: NodeJS.Timeout | null = null

  private lease (s: StallEntry, side: StallSide): void {
    const k = this.view[side === 'receive' ? N_RECEIVE_STALL_KIB : N_SEND_STALL_KIB]
    const grace = this.limits.stallGraceMs
    const moving = this.now() - s.drainedAt < grace
    if (!addWithin(this.view, N_RESERVED_KIB, k, this.view[N_NODE_KIB]) && !this.evictFor(k, s, moving ? 0 : grace)) {
      this.dropLeases(s)
      this.evicted++
      s.evict()
      return
    }
    if (side === 'receive') s.receiveKiB = k
    else s.sendKiB = k
  }

  /** Resets this thread's leased streams backed up for `minAge` ms or more, oldest first, until `k` KiB are reserved. */
  private evictFor (k: number, requester: StallEntry | null, minAge: number): boolean {
    const now = this.now()
    let victim = this.oldest
    while (victim !== null && now - victim.since >= minAge) {
      const next = victim.next
      if (victim !== requester && victim.receiveKiB + victim.sendKiB > 0) {
        this.dropLeases(victim)
        this.evicted++
        victim.evict()
        if (addWithin(this.view, N_RESERVED_KIB, k, this.view[N_NODE_KIB])) return true
      }
      victim = next
    }
    return false
  }

  private link (s: StallEntry): void {
    s.since = this.now()
    s.prev = this.newest
    s.next = null
    if (this.newest === null) this.oldest = s
    else this.newest.next = s
    this.newest = s
  }

  private unlink (s: StallEntry): void {
    if (s.prev === null) { if (this.oldest === s) this.oldest = s.next } else s.prev.next = s.next
    if (s.next === null) { if (this.newest === s) this.newest = s.prev } else s.next.prev = s.prev
    s.prev = s.next = null
  }
}

/** rebalanceAll() walks every session: not more often than this. */
const REBALANCE_ALL_MS = 100
/** How often a thread looks whether a stream did not fit on another thread. */
const LOAD_WATCH_MS = 500
/** After a stream did not fit, windows stay at the floor this long (no growing back into the room it needs). */
const PRESSURE_HOLD_MS = 1000
/** How often backed-up streams are checked for leases: half the time after which they lease. */
const LEASE_TICK_MS = Math.ceil(TUNNEL_DEFAULTS.stallLeaseAfterMs / 2)

function pow2floor (x: number): number {
  return x < 1 ? 0 : 2 ** Math.floor(Math.log2(x))
}
