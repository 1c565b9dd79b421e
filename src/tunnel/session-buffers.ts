import { kib, type NodeBufferBudget, type StallEntry, type StallSide } from './buffer-budget'

// One session's share of the node's buffer budget (buffer-budget.ts has the arithmetic):
// the window it announces, what its open streams reserve (window + overhead), and each
// stream's handle, through which its TunnelStream leases buffers while a side is backed up
// and reports what it received (the demand its window grows on).
//
//   start   a session announces the floor (4 KiB): an idle or light stream costs 20 KiB
//   grow    a stream that received twice the window within DEMAND_WITHIN_MS is held back by
//           it (the peer waits for window updates): the session's window grows fourfold,
//           reserved for every stream of it before the SETTINGS go out, while the session's
//           and the node's budgets have room (4 KiB → 4 MiB in five steps, each a round trip)
//   shrink  a session without such demand for SHRINK_AFTER_MS, whose streams received less
//           than a window in that time, lowers its window fourfold, every SHRINK_AFTER_MS,
//           back to the floor; its reservations drop when the peer acknowledges. And when a stream does not fit (the node or the session is full),
//           every grown window of the node drops to the floor for a while (buffer-budget.ts
//           pressure()), and the stream waits for that room.

const KiB = 1024
/** After a stream of this session did not fit, its window is not raised again for this long (no flapping). */
const RAISE_HOLD_MS = 1000
/** A stream that receives twice its window within this long is held back by it. */
const DEMAND_WITHIN_MS = 100
/** A grown window with no demand for this long shrinks (fourfold), and again after as long. */
const SHRINK_AFTER_MS = 1000
/** How much a window grows on demand, or shrinks without. */
const STEP = 4

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

/** What the budget needs of a stream's consumer (its TunnelStream): its buffers, and a way to reset it. */
export interface BudgetConsumer {
  readonly authority: string
  /** Bytes its own buffers hold, besides the HTTP/2 stream's (a chunk both reference counts once). */
  readonly heldLength: number
  /** Resets the stream: the node's budget has no room for its buffers. */
  overBudget: () => void
}

/** A stream's share of the budget, as its TunnelStream uses it. */
export interface StreamLease {
  attach: (consumer: BudgetConsumer) => void
  /** A side of the stream backed up: its buffers are leased. Without room a stream is reset (this one, if no other may be). */
  stall: (side: StallSide) => void
  /** The side drained: the lease is returned. */
  unstall: (side: StallSide) => void
  /** `bytes` of DATA arrived for the stream (the demand its session's window grows on). */
  received: (bytes: number) => void
}

/** One open stream's reservation, and its place in the node's list of backed-up streams. */
export class StreamBuffers implements StreamLease, StallEntry {
  backedUp = 0
  receiveKiB = 0
  sendKiB = 0
  since = 0
  drainedAt: number
  prev: StallEntry | null = null
  next: StallEntry | null = null
  consumer: BudgetConsumer | null = null
  private closed = false
  /** Bytes received since demandSince. */
  private demandBytes = 0
  private demandSince = 0

  /** `k`: KiB reserved while the stream is open (window + overhead). */
  constructor (private readonly owner: SessionBuffers, readonly stream: BudgetStream, public k: number) {
    // A stream that just opened counts as moving.
    this.drainedAt = owner.node.now()
  }

  attach (consumer: BudgetConsumer): void { this.consumer = consumer }

  stall (side: StallSide): void {
    if (!this.closed) this.owner.node.stall(this, side)
  }

  unstall (side: StallSide): void { this.owner.node.unstall(this, side) }

  received (bytes: number): void {
    const now = Date.now()
    if (now - this.demandSince > DEMAND_WITHIN_MS) {
      this.demandSince = now
      this.demandBytes = 0
    }
    this.demandBytes += bytes
    this.owner.receivedBytes += bytes
    if (this.demandBytes >= 2 * this.owner.effectiveWindow) {
      this.demandBytes = 0
      this.demandSince = now
      this.owner.demand()
    }
  }

  readonly evict = (): void => { this.owner.evicted(this) }

  /** The stream closed: its leases are returned (its reservation is the session's to return). */
  close (): void {
    this.closed = true
    this.owner.node.dropLeases(this)
  }

  /** Bytes its buffers hold now. */
  held (): number {
    const c = this.consumer
    return this.stream.readableLength + this.stream.writableLength + (c === null ? 0 : c.heldLength)
  }
}

/** One session's reservations and window. */
export class SessionBuffers {
  /** The window the peer has acknowledged (or, before a server's first SETTINGS are, may assume). */
  private window: number
  /** A window sent and not yet acknowledged. */
  private pending: number | null = null
  private ackTimer: NodeJS.Timeout | null = null
  private reservedKiB = 0
  private readonly streams = new Map<BudgetStream, StreamBuffers>()
  /** The window its streams' demand has grown to (the floor while they carry little). */
  private level: number
  /** When a stream last showed demand. */
  private demandAt = 0
  /** Bytes its streams received since the last shrink check. */
  receivedBytes = 0
  /** Shrinks a grown window without demand, while it is above the floor. */
  private shrinkTimer: NodeJS.Timeout | null = null
  private raiseNotBefore: number
  /** A raise waits for raiseNotBefore. */
  private raiseTimer: NodeJS.Timeout | null = null
  private closed = false

  /**
   * `initialWindow`: the window the session's first SETTINGS announce (initialWindow()).
   * A client's is in effect at once: its streams are opened after its SETTINGS. A server's
   * binds once the peer acknowledges it (firstAcknowledged); until then a client may use
   * the protocol's 65,535 on the streams it opens, so that is what they reserve (Ferry's
   * pool opens its streams only after it has the server's SETTINGS, and acknowledges them
   * first), and the server does not raise it before.
   */
  constructor (private readonly session: BudgetSession, readonly node: NodeBufferBudget, initialWindow: number,
    private readonly o: {
      readonly ackTimeoutMs: number
      /** The peer did not acknowledge a window change in time. */
      readonly onAckTimeout: () => void
      /** Reservations went down: a stream that did not fit may fit now. */
      readonly onRoom?: () => void
      /** One of its streams was reset: the node's budget had no room for its backed-up buffers. */
      readonly onStallReset?: (authority: string) => void
      readonly side: 'client' | 'server'
    }) {
    this.level = node.limits.minWindowBytes
    if (o.side === 'server') {
      this.window = PROTOCOL_WINDOW
      this.pending = initialWindow
      this.raiseNotBefore = Number.POSITIVE_INFINITY
    } else {
      this.window = initialWindow
      this.raiseNotBefore = 0
    }
    node.addSession(this)
  }

  /** The peer acknowledged the session's first SETTINGS (a server's). */
  firstAcknowledged (): void {
    if (this.closed || this.raiseNotBefore !== Number.POSITIVE_INFINITY) return
    this.raiseNotBefore = 0
    if (this.pending !== null) this.acknowledged(this.pending)
  }

  /** The window a new session announces in its first SETTINGS: the floor (it grows with demand). */
  static initialWindow (node: NodeBufferBudget): number {
    return node.targetWindow(1, node.limits.minWindowBytes)
  }

  /** Streams open now. */
  get count (): number { return this.streams.size }

  /** The window in effect (the larger while a change is in flight). */
  get effectiveWindow (): number { return Math.max(this.window, this.pending ?? 0) }

  /**
   * Reserves room for one more stream; null (nothing reserved) when it does not fit. Then
   * grown windows drop to the floor — this session's at once (the SETTINGS go out before
   * the refusal, so the stream, retried or waiting, fits once they are acknowledged), the
   * node's other sessions' too when the node is full (buffer-budget.ts pressure()).
   */
  reserve (): number | null {
    if (this.closed) return null
    const k = kib(this.effectiveWindow + this.node.limits.streamOverheadBytes)
    const sessionFull = this.reservedKiB + k > this.node.limits.sessionBytes / KiB
    if (sessionFull || !this.node.reserveOpen(k)) {
      this.level = this.node.limits.minWindowBytes
      this.raiseNotBefore = Date.now() + RAISE_HOLD_MS
      this.rebalance()
      if (!sessionFull) this.node.pressure()
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
    this.node.releaseOpen(k)
  }

  /** A stream holding reservation `k` (from reserve()) is open: its handle, for its TunnelStream. */
  bind (stream: BudgetStream, k: number): StreamBuffers {
    const handle = new StreamBuffers(this, stream, k)
    this.streams.set(stream, handle)
    this.node.streamOpened()
    // One more stream: its share of the session's budget is smaller.
    this.rebalance()
    return handle
  }

  /** The stream closed: its reservation and leases are free. */
  unbind (stream: BudgetStream): void {
    const handle = this.streams.get(stream)
    if (handle === undefined) return
    this.streams.delete(stream)
    handle.close()
    this.reservedKiB -= handle.k
    this.node.releaseOpen(handle.k)
    this.node.streamClosed()
    if (this.closed) return
    this.rebalance()
    this.o.onRoom?.()
  }

  /** A stream of this session is held back by its window: it grows (STEP-fold), if the budgets allow, and shrinks again without demand. */
  demand (): void {
    if (this.closed) return
    this.demandAt = Date.now()
    const grown = Math.min(this.node.limits.maxWindowBytes, this.effectiveWindow * STEP)
    if (grown <= this.level) return
    this.level = grown
    this.shrinkTimer ??= setInterval(this.shrinkIdle, SHRINK_AFTER_MS).unref()
    this.rebalance()
  }

  /**
   * A grown window without demand for SHRINK_AFTER_MS shrinks STEP-fold; at the floor the
   * timer stops. A session whose streams received a window's worth since the last check
   * still uses it (a bulk stream slower than its window, not held back by it) and keeps it.
   */
  private readonly shrinkIdle = (): void => {
    const floor = this.node.limits.minWindowBytes
    if (this.receivedBytes >= this.window) this.demandAt = Date.now()
    this.receivedBytes = 0
    if (Date.now() - this.demandAt >= SHRINK_AFTER_MS) this.level = Math.max(floor, Math.floor(this.level / STEP))
    if (this.level <= floor && this.shrinkTimer !== null) {
      clearInterval(this.shrinkTimer)
      this.shrinkTimer = null
    }
    this.rebalance()
  }

  /** A stream of this session is being reset for want of room (buffer-budget.ts). */
  evicted (handle: StreamBuffers): void {
    const c = handle.consumer
    if (c === null) return
    this.o.onStallReset?.(c.authority)
    c.overBudget()
  }

  /** Announces a new window if the target moved (one SETTINGS at a time). */
  rebalance (): void {
    if (this.closed || this.pending !== null || this.session.destroyed || this.session.closed) return
    if (this.node.underPressure()) this.level = this.node.limits.minWindowBytes
    const target = this.node.targetWindow(this.streams.size, this.level)
    if (target === this.window) return
    if (target > this.window) {
      // Only streams grow a window (demand() is a stream's).
      if (this.streams.size === 0) return
      const wait = this.raiseNotBefore - Date.now()
      if (wait > 0) {
        this.raiseTimer ??= setTimeout(() => { this.raiseTimer = null; this.rebalance() }, wait).unref()
        return
      }
      // Reserve the raise for every open stream before the peer may use it.
      const extra = kib(target) - kib(this.window)
      const total = extra * this.streams.size
      if (this.reservedKiB + total > this.node.limits.sessionBytes / KiB || !this.node.reserveOpen(total, false)) return
      this.reservedKiB += total
      for (const handle of this.streams.values()) handle.k += extra
    }
    this.send(target)
  }

  /** Bytes this session's streams hold now (unread and unsent; for metrics and tests). */
  held (): number {
    let n = 0
    for (const handle of this.streams.values()) n += handle.held()
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
    if (this.raiseTimer !== null) clearTimeout(this.raiseTimer)
    if (this.shrinkTimer !== null) clearInterval(this.shrinkTimer)
    this.node.deleteSession(this)
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
      const overhead = this.node.limits.streamOverheadBytes
      for (const handle of this.streams.values()) {
        const now = kib(Math.max(target, handle.stream.readableLength) + overhead)
        if (now < handle.k) {
          this.reservedKiB -= handle.k - now
          this.node.releaseOpen(handle.k - now)
          handle.k = now
        }
      }
    }
    this.rebalance()
    // Streams waiting for room try again: after a lower window there may be room; after
    // any, a change they waited for is over (they wait again if another is now in flight).
    this.o.onRoom?.()
  }
}

/** A refusal's detail: why a stream that does not fit was refused. */
export function noRoomDetail (session: SessionBuffers): string {
  const node = session.node
  const l = node.limits
  return `no room for another stream: session ${session.reservedBytes()} of ${l.sessionBytes} bytes reserved, node ${node.reservedBytes()} of ${l.nodeBytes} (open streams ${node.openBytes()} of ${l.openBytes})`
}

/** A refusal's detail: why an open stream was reset. */
export const stallResetDetail = 'stream reset: backed up, and the node\'s tunnel buffer budget had no room for its buffers'

/** SETTINGS_INITIAL_WINDOW_SIZE until a peer's SETTINGS say otherwise (RFC 9113 §6.5.2). */
const PROTOCOL_WINDOW = 65_535
