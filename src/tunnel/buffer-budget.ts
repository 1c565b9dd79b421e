import { ferryError } from '../errors'
import { TUNNEL_DEFAULTS } from './defaults'

// How many bytes a peer can make this node hold, bounded per session and per node.
//
// What a tunnel stream can hold is decided by HTTP/2 flow control, and in Node only by
// the *stream* window: Node acknowledges the connection window as data arrives, read or
// not, so a session's connection window bounds nothing. A stream whose pod does not read
// holds at most its receive window of unread bytes, plus its own fixed buffers both ways
// (the TunnelStream's and the HTTP/2 stream's, one frame each way: `streamBufferBytes`).
// So each stream *reserves* window + streamBufferBytes when it opens, and
//
//   - a session may reserve at most `sessionBytes`, the node at most `nodeBytes` (over
//     every session of both ends: server streams and the pool's client streams);
//   - a stream that does not fit is refused: REFUSED_STREAM on the server (the client
//     retries), FERRY_ERR_TUNNEL_BUSY `buffer-budget` from the pool;
//   - so that the budget holds many streams, the window shrinks as streams multiply:
//     each session's SETTINGS_INITIAL_WINDOW_SIZE follows
//         clamp(pow2floor(min(sessionBytes / 2n, nodeBytes / 2N) − streamBufferBytes), minWindow, maxWindow)
//     (n streams on the session, N on the node): one stream gets the full 4 MiB (bulk
//     throughput is unchanged), a hundred get a few hundred KiB, and half the budget is
//     kept free for new streams. A change is one SETTINGS frame, sent when the target
//     crosses a power of two, at most one outstanding per session.
//
// A lower window applies to every stream of the session once the peer acknowledges the
// SETTINGS (RFC 9113 §6.9.2); until then the peer may still use the old one, so a new
// stream reserves the larger of the two. At the acknowledgement each stream's reservation
// drops to the new window or what it already holds unread, whichever is larger (HTTP/2
// does not take back bytes already sent). A raise is reserved for every stream before it
// is sent. A peer that does not acknowledge within `ackTimeoutMs` is cut off (as RFC 9113
// §6.5.3 allows). Nothing is counted per byte: reservations change only when a stream
// opens or closes and when a window changes.
//
// The node's reservation lives in a SharedArrayBuffer (NodeBufferBudget), so the bound
// holds for the node when sessions live on several worker threads.

export interface BufferLimits {
  /** Every tunnel stream of the node together. */
  readonly nodeBytes: number
  /** One session's streams together. */
  readonly sessionBytes: number
  /** Smallest receive window a stream is given. */
  readonly minWindowBytes: number
  /** Largest (the configured stream window). */
  readonly maxWindowBytes: number
  /** What one stream's own buffers hold besides its window, both ways. */
  readonly streamBufferBytes: number
}

const KiB = 1024
const MAGIC = 0x46544e42 // "FTNB"
const N_MAGIC = 0
const N_NODE_KIB = 1
const N_SESSION_KIB = 2
const N_MIN_WINDOW = 3
const N_MAX_WINDOW = 4
const N_STREAM_KIB = 5
const N_RESERVED_KIB = 6
const N_STREAMS = 7
const N_SLOTS = 8

const kib = (bytes: number): number => Math.ceil(bytes / KiB)

/** The node's share of the budget: limits and what is reserved, in shared memory. */
export class NodeBufferBudget {
  readonly limits: BufferLimits
  private readonly view: Int32Array
  /** This thread's sessions, re-balanced when the node's stream count crosses a power of two. */
  readonly sessions = new Set<SessionBuffers>()

  private constructor (readonly buffer: SharedArrayBuffer) {
    this.view = new Int32Array(buffer)
    if (this.view.length < N_SLOTS || this.view[N_MAGIC] !== MAGIC) throw ferryError('FERRY_ERR_INVALID_ARG', 'not a tunnel buffer budget')
    this.limits = Object.freeze({
      nodeBytes: this.view[N_NODE_KIB] * KiB,
      sessionBytes: this.view[N_SESSION_KIB] * KiB,
      minWindowBytes: this.view[N_MIN_WINDOW],
      maxWindowBytes: this.view[N_MAX_WINDOW],
      streamBufferBytes: this.view[N_STREAM_KIB] * KiB
    })
  }

  static create (limits: Partial<BufferLimits> = {}): NodeBufferBudget {
    const l: BufferLimits = {
      nodeBytes: limits.nodeBytes ?? TUNNEL_DEFAULTS.nodeBufferBytes,
      sessionBytes: limits.sessionBytes ?? TUNNEL_DEFAULTS.sessionBufferBytes,
      minWindowBytes: limits.minWindowBytes ?? TUNNEL_DEFAULTS.minStreamWindowBytes,
      maxWindowBytes: limits.maxWindowBytes ?? TUNNEL_DEFAULTS.streamWindowBytes,
      streamBufferBytes: limits.streamBufferBytes ?? TUNNEL_DEFAULTS.streamBufferBytes
    }
    for (const [name, v] of Object.entries(l)) {
      if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: ${name} is ${String(v)}: expected a positive integer of bytes`)
    }
    if (l.minWindowBytes < 65_535 || l.minWindowBytes > l.maxWindowBytes) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: minWindowBytes ${l.minWindowBytes} must be 65535 … maxWindowBytes (${l.maxWindowBytes})`)
    if (l.sessionBytes > l.nodeBytes || l.sessionBytes < l.minWindowBytes + l.streamBufferBytes) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel buffer budget: sessionBytes ${l.sessionBytes} must hold one stream (${l.minWindowBytes + l.streamBufferBytes}) and be at most nodeBytes (${l.nodeBytes})`)
    }
    const buffer = new SharedArrayBuffer(N_SLOTS * 4)
    const view = new Int32Array(buffer)
    view[N_NODE_KIB] = Math.floor(l.nodeBytes / KiB)
    view[N_SESSION_KIB] = Math.floor(l.sessionBytes / KiB)
    view[N_MIN_WINDOW] = l.minWindowBytes
    view[N_MAX_WINDOW] = l.maxWindowBytes
    view[N_STREAM_KIB] = kib(l.streamBufferBytes)
    Atomics.store(view, N_MAGIC, MAGIC)
    return new NodeBufferBudget(buffer)
  }

  static attach (buffer: SharedArrayBuffer): NodeBufferBudget {
    return new NodeBufferBudget(buffer)
  }

  /** Bytes reserved by every stream of the node now. */
  reservedBytes (): number { return Atomics.load(this.view, N_RESERVED_KIB) * KiB }

  /** Bytes the streams of this thread's sessions hold now (both ends; walks every stream: for metrics and tests). */
  heldBytes (): number {
    let n = 0
    for (const s of this.sessions) n += s.held()
    return n
  }

  /** Tunnel streams of the node now (both ends). */
  streams (): number { return Atomics.load(this.view, N_STREAMS) }

  /** Reserves `k` KiB if the node has room. */
  tryReserve (k: number): boolean {
    const max = this.view[N_NODE_KIB]
    for (;;) {
      const cur = Atomics.load(this.view, N_RESERVED_KIB)
      if (cur + k > max) return false
      if (Atomics.compareExchange(this.view, N_RESERVED_KIB, cur, cur + k) === cur) return true
    }
  }

  release (k: number): void { Atomics.sub(this.view, N_RESERVED_KIB, k) }

  /** A stream opened (true when the node's count reached a power of two: time to re-balance). */
  streamOpened (): boolean {
    const n = Atomics.add(this.view, N_STREAMS, 1) + 1
    return (n & (n - 1)) === 0
  }

  streamClosed (): boolean {
    const n = Atomics.sub(this.view, N_STREAMS, 1) - 1
    return n > 0 && (n & (n - 1)) === 0
  }

  /**
   * The window a session with `n` streams should announce now. `burst`: the session just
   * had to refuse a stream, so assume a burst may bring up to `maxStreams` streams at once.
   */
  targetWindow (n: number, burst: number | null = null): number {
    const l = this.limits
    const sessionStreams = Math.max(n, burst ?? 1, 1)
    const nodeStreams = Math.max(this.streams() + (burst ?? 0), 1)
    const share = Math.min(l.sessionBytes / (2 * sessionStreams), l.nodeBytes / (2 * nodeStreams)) - l.streamBufferBytes
    return Math.min(l.maxWindowBytes, Math.max(l.minWindowBytes, pow2floor(share)))
  }

  /** Every session of this thread re-checks its window (the node's load changed a lot); at most every REBALANCE_ALL_MS. */
  rebalanceAll (): void {
    const now = Date.now()
    if (now - this.lastRebalanceAll < REBALANCE_ALL_MS) return
    this.lastRebalanceAll = now
    for (const s of this.sessions) s.rebalance()
  }

  private lastRebalanceAll = 0
}

/** rebalanceAll() walks every session: not more often than this. */
const REBALANCE_ALL_MS = 100
/** After a burst lowered a session's window, it is not raised again for this long (no flapping). */
const RAISE_HOLD_MS = 1000

function pow2floor (x: number): number {
  return x < 1 ? 0 : 2 ** Math.floor(Math.log2(x))
}

/** What SessionBuffers needs of an HTTP/2 session and its streams (Node's Http2Session/Http2Stream). */
export interface BudgetSession {
  settings: (s: { initialWindowSize: number }, cb: (err: Error | null) => void) => void
  readonly destroyed: boolean
  readonly closed: boolean
}
export interface BudgetStream {
  readonly readableLength: number
  readonly writableLength: number
}

/** One session's reservations and window. */
export class SessionBuffers {
  /** The window the peer has acknowledged. */
  private window: number
  /** A window sent and not yet acknowledged. */
  private pending: number | null = null
  private ackTimer: NodeJS.Timeout | null = null
  private reservedKiB = 0
  private readonly streams = new Map<BudgetStream, number>()
  /** Outer buffers of a stream's consumer (the TunnelStream), for held(). */
  private readonly outer = new Map<BudgetStream, BudgetStream>()
  /** A refusal asked for a burst-sized window (applied at the next SETTINGS). */
  private burst = false
  private raiseNotBefore = 0
  private closed = false

  constructor (private readonly session: BudgetSession, private readonly node: NodeBufferBudget, initialWindow: number,
    private readonly o: {
      /** Streams the session may carry at once (the burst a peer may send). */
      readonly maxStreams: number
      readonly ackTimeoutMs: number
      /** The peer did not acknowledge a window change in time. */
      readonly onAckTimeout: () => void
      /** Reservations went down: a stream that did not fit may fit now. */
      readonly onRoom?: () => void
    }) {
    this.window = initialWindow
    node.sessions.add(this)
  }

  /** Streams open now. */
  get count (): number { return this.streams.size }

  /** The window in effect (the larger while a change is in flight). */
  get effectiveWindow (): number { return Math.max(this.window, this.pending ?? 0) }

  /**
   * Reserves room for one more stream; null (nothing reserved) when it does not fit. Then
   * the window is lowered at once to what a whole burst of streams fits in, so that the
   * stream, retried one round trip later (the SETTINGS go out before the refusal), fits.
   */
  reserve (): number | null {
    if (this.closed) return null
    const k = kib(this.effectiveWindow + this.node.limits.streamBufferBytes)
    const sessionFull = this.reservedKiB + k > this.node.limits.sessionBytes / KiB
    if (sessionFull || !this.node.tryReserve(k)) {
      this.burst = true
      this.raiseNotBefore = Date.now() + RAISE_HOLD_MS
      this.rebalance()
      if (!sessionFull) this.node.rebalanceAll()
      return null
    }
    this.reservedKiB += k
    return k
  }

  /** A window change is in flight: a stream that did not fit may fit once it is acknowledged (onRoom). */
  get changing (): boolean { return this.pending !== null }

  /** Gives back a reservation that no stream took. */
  release (k: number): void {
    this.reservedKiB -= k
    this.node.release(k)
  }

  /** A stream holding reservation `k` (from reserve()) is open. */
  bind (stream: BudgetStream, k: number): void {
    this.streams.set(stream, k)
    if (this.node.streamOpened()) this.node.rebalanceAll()
    this.rebalance()
  }

  /** The stream's consumer, whose buffers count in held() too. */
  attachConsumer (stream: BudgetStream, consumer: BudgetStream): void {
    if (this.streams.has(stream)) this.outer.set(stream, consumer)
  }

  /** The stream closed: its reservation is free. */
  unbind (stream: BudgetStream): void {
    const k = this.streams.get(stream)
    if (k === undefined) return
    this.streams.delete(stream)
    this.outer.delete(stream)
    this.reservedKiB -= k
    this.node.release(k)
    if (this.closed) return
    if (this.node.streamClosed()) this.node.rebalanceAll()
    this.rebalance()
    this.o.onRoom?.()
  }

  /** Announces a new window if the target moved (one SETTINGS at a time). */
  rebalance (): void {
    if (this.closed || this.pending !== null || this.session.destroyed || this.session.closed) return
    const target = this.node.targetWindow(this.streams.size, this.burst ? this.o.maxStreams : null)
    this.burst = false
    if (target === this.window) return
    if (target > this.window) {
      if (Date.now() < this.raiseNotBefore) return
      // Reserve the raise for every open stream before the peer may use it.
      const extra = kib(target) - kib(this.window)
      const total = extra * this.streams.size
      if (this.reservedKiB + total > this.node.limits.sessionBytes / KiB || !this.node.tryReserve(total)) return
      this.reservedKiB += total
      for (const [s, k] of this.streams) this.streams.set(s, k + extra)
    }
    this.send(target)
  }

  /** Bytes this session's streams hold now (unread and unsent; for metrics and tests). */
  held (): number {
    let n = 0
    for (const s of this.streams.keys()) {
      n += s.readableLength + s.writableLength
      const o = this.outer.get(s)
      if (o !== undefined) n += o.readableLength + o.writableLength
    }
    return n
  }

  reservedBytes (): number { return this.reservedKiB * KiB }

  /** The window the peer has acknowledged (diagnostics, tests). */
  get acknowledgedWindow (): number { return this.window }

  /** The session is gone: every reservation is returned. */
  close (): void {
    if (this.closed) return
    this.closed = true
    if (this.ackTimer !== null) clearTimeout(this.ackTimer)
    this.node.sessions.delete(this)
    for (const s of [...this.streams.keys()]) this.unbind(s)
  }

  private send (target: number): void {
    this.pending = target
    try {
      this.session.settings({ initialWindowSize: target }, (err) => {
        if (this.ackTimer !== null) clearTimeout(this.ackTimer)
        this.ackTimer = null
        if (err !== null || this.closed) return
        this.acknowledged(target)
      })
    } catch {
      // The session is closing under us: nothing to change.
      this.pending = null
      return
    }
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null
      if (!this.closed && this.pending === target) this.o.onAckTimeout()
    }, this.o.ackTimeoutMs)
  }

  private acknowledged (target: number): void {
    const lowered = target < this.window
    this.window = target
    this.pending = null
    if (lowered) {
      // Each stream now holds at most the new window, or what it already has unread.
      const base = this.node.limits.streamBufferBytes
      for (const [s, k] of this.streams) {
        const now = kib(Math.max(target, s.readableLength) + base)
        if (now < k) {
          this.streams.set(s, now)
          this.reservedKiB -= k - now
          this.node.release(k - now)
        }
      }
    }
    this.rebalance()
    if (lowered) this.o.onRoom?.()
  }
}
