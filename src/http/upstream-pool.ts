import { Agent, type AgentOptions, type ClientRequest } from 'node:http'
import { type ClientHttp2Session, connect as h2connect, constants } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { RelayEnd } from '../proxy/relay'
import type { ConnectionPolicy } from '../routing/model'
import { markConnectFailure, type UpstreamTarget } from './context'
import { ConnectionSlots, dialWithin, type SlotRelease } from './upstream-slots'

// Upstream connections, pooled per target key (context.ts: the key names the endpoint and
// whoever the connection speaks for):
//   HTTP/1.1  an http.Agent per key: keep-alive connections, one request at a time each,
//             as many as requests in flight; idle ones kept and reused
//   HTTP/2    one session per key, every request a stream on it; a session that closes
//             or goes away is replaced by the next request
// Connections come from the target's `dial()` (a socket in a pod's netns, or a tunnel
// stream); a connection made elsewhere (detection's first upstream) can be handed in with
// `seed`. Pools left without connections are dropped by `sweep()` (a timer, unref'd).
// A pooled connection idle for `idleMs` (an HTTP/1.1 connection with no request, an
// HTTP/2 session with no stream) is closed: our own timer, since a tunnel stream has no
// socket timeout (options.ts says why the default is 60 s).
//
// A routed attempt's backend may limit its connections (ConnectionPolicy: a
// DestinationRule's connectionPool); its pools are its own (keyed by target and policy)
// and carry the limits out, as Envoy's connection pools do:
//   tcp.maxConnections         each connection holds a slot of the backend's node-wide
//                              count (upstream-slots.ts) from its dial to its close. At
//                              the limit an HTTP/1.1 request waits for a connection of its
//                              pool to be free (how many may wait: the request bound,
//                              src/limits/pool-gate.ts; they fail with its last dial
//                              when that fails); an HTTP/2 pool opens its one
//                              session even at the limit (counted)
//   maxRequestsPerConnection   an HTTP/1.1 connection is closed after that many responses
//                              (never reused); an HTTP/2 session takes no new stream after
//                              that many (GOAWAY; its streams finish) and a new one opens
//   connectTimeout             a dial not done in time fails as a connect failure (UF)
//   idleTimeout                replaces the pools' idle timeout (above) for these pools

const SWEEP_MS = 30_000

/** An http.Agent whose connections come from dial(), sockets or any Duplex. */
class DialAgent extends Agent {
  private seeded: RelayEnd | null = null
  /** The idle timer of each free connection (null while it carries a request). */
  private readonly idleTimers = new WeakMap<Duplex, { timer: NodeJS.Timeout | null }>()
  /** Requests each connection was given (maxRequestsPerConnection). */
  private readonly served = new WeakMap<Duplex, number>()
  private readonly slots: ConnectionSlots
  /** Slots taken by addRequest for the connection its request is about to dial. */
  private readonly reserved: SlotRelease[] = []
  /** Dials waiting for a slot. */
  private waiters = 0
  private destroyed = false
  constructor (private readonly target: UpstreamTarget, opts: AgentOptions, private readonly idleMs: number, private readonly policy: ConnectionPolicy | null) {
    super(opts)
    this.slots = new ConnectionSlots(policy?.gate ?? null)
  }

  /**
   * Node's Agent gives a request a free connection, else dials one (up to maxSockets),
   * else queues it for the next connection freed. With a connection limit, a request that
   * finds no free connection dials only with a slot: without one it is queued (maxSockets
   * is lowered for this call only, so Node's own queue takes it).
   */
  addRequest (req: ClientRequest, options: { host?: string, port?: number }, ...rest: unknown[]): void {
    const policy = this.policy
    let max = this.maxSockets
    if (policy !== null) {
      const perConnection = policy.limits.maxRequestsPerConnection
      if (perConnection !== null) req.once('socket', (s: Duplex) => { this.given(s, req, perConnection) })
      if (policy.gate !== null && (this.freeSockets[this.getName(options)]?.length ?? 0) === 0) {
        const slot = this.slots.take()
        if (slot !== null) this.reserved.push(slot)
        else max = 0
      }
    }
    const saved = this.maxSockets
    this.maxSockets = max
    try {
      (Agent.prototype as unknown as { addRequest: (...a: unknown[]) => void }).addRequest.call(this, req, options, ...rest)
    } finally {
      this.maxSockets = saved
    }
  }

  /** A request got connection `s`: its last one when it is the connection's `max`th (closed after the response, never reused). */
  private given (s: Duplex, req: ClientRequest, max: number): void {
    const n = (this.served.get(s) ?? 0) + 1
    this.served.set(s, n)
    if (n >= max) req.shouldKeepAlive = false
  }

  /** A connection whose response ended is kept (unless Node's Agent declines): closed if still free after idleMs. */
  override keepSocketAlive (socket: Duplex): boolean {
    // Node's typings say void; Node's Agent destroys the connection when it returns falsy.
    const keep = super.keepSocketAlive(socket as Parameters<Agent['keepSocketAlive']>[0]) as unknown
    if (keep !== true) return false
    // A dial waits for a slot: this free connection is closed to give it one.
    if (this.waiters > 0) return false
    let idle = this.idleTimers.get(socket)
    if (idle === undefined) {
      const entry: { timer: NodeJS.Timeout | null } = { timer: null }
      this.idleTimers.set(socket, entry)
      socket.once('close', () => { if (entry.timer !== null) clearTimeout(entry.timer) })
      idle = entry
    }
    if (idle.timer !== null) clearTimeout(idle.timer)
    idle.timer = setTimeout(() => { socket.destroy() }, this.idleMs)
    idle.timer.unref()
    return true
  }

  /** A free connection taken for a request is no longer idle. */
  override reuseSocket (socket: Duplex, req: Parameters<Agent['reuseSocket']>[1]): void {
    const idle = this.idleTimers.get(socket)
    if (idle !== undefined && idle.timer !== null) {
      clearTimeout(idle.timer)
      idle.timer = null
    }
    super.reuseSocket(socket as Parameters<Agent['reuseSocket']>[0], req)
  }

  /**
   * A connection made elsewhere, for the next request. It is this agent's until a request
   * takes it: replaced by a newer one, dropped (unseed: its downstream closed first, e.g.
   * every request refused) or the agent destroyed, it is closed — never left open to the pod.
   */
  seed (end: RelayEnd): void {
    this.seeded?.destroy()
    this.seeded = end
  }

  unseed (end: RelayEnd): void {
    if (this.seeded !== end) return
    this.seeded = null
    end.destroy()
  }

  override destroy (): void {
    this.destroyed = true
    for (const slot of this.reserved.splice(0)) slot()
    this.seeded?.destroy()
    this.seeded = null
    super.destroy()
  }

  override createConnection (_opts: unknown, cb?: (err: Error | null, s: Duplex) => void): undefined {
    const seeded = this.seeded
    if (seeded !== null) {
      this.seeded = null
      seeded.allowHalfOpen = false
      seeded.resume()
      queueMicrotask(() => cb?.(null, socketLike(seeded)))
      return undefined
    }
    const slot = this.reserved.shift() ?? this.slots.take()
    if (slot !== null) { this.dial(slot, cb); return undefined }
    // A dial for a queued request (Node's Agent replaces a closed connection) at the limit.
    this.waiters++
    void this.slots.wait(() => this.destroyed).then((s) => {
      this.waiters--
      if (s === null) cb?.(markConnectFailure(new Error('upstream pool closed')), undefined as unknown as Duplex)
      else this.dial(s, cb)
    })
    return undefined
  }

  private dial (slot: SlotRelease, cb?: (err: Error | null, s: Duplex) => void): void {
    dialWithin(this.target, this.policy?.limits.connectTimeoutMs ?? null).then((s) => {
      s.once('close', slot)
      s.allowHalfOpen = false
      cb?.(null, socketLike(s))
    }, (err) => {
      slot()
      const failure = markConnectFailure(err)
      cb?.(failure, undefined as unknown as Duplex)
      // Requests queued for a connection of this pool have none left to wait for: they
      // fail as this connect did (Envoy purges its pending requests so).
      if (this.slots.count === 0) {
        const queues = this.requests as unknown as Record<string, Array<{ onSocket: (s: null, err: Error) => void }>>
        for (const name of Object.keys(queues)) {
          // Node's own way to fail a request that got no connection ('error' with `failure`).
          for (const queued of queues[name].splice(0)) queued.onSocket(null, failure)
          delete queues[name]
        }
      }
    })
  }

  idle (): boolean {
    return this.seeded === null && this.slots.count === 0 && this.waiters === 0 && Object.keys(this.sockets).length === 0 && Object.keys(this.freeSockets).length === 0 && Object.keys(this.requests).length === 0
  }
}

/**
 * Node's Agent keeps connections alive with socket methods (keepalive, ref/unref, an
 * idle timer). A tunnel stream is a Duplex without them and needs none of them: it gets
 * no-op ones, so the Agent's own bookkeeping (its listeners on reuse) runs unchanged.
 */
function socketLike (end: RelayEnd): RelayEnd {
  const e = end as RelayEnd & Partial<Record<'ref' | 'unref' | 'setKeepAlive' | 'setTimeout' | 'setNoDelay', (...args: unknown[]) => unknown>>
  if (typeof e.ref !== 'function') e.ref = returnThis
  if (typeof e.unref !== 'function') e.unref = returnThis
  if (typeof e.setKeepAlive !== 'function') e.setKeepAlive = returnThis
  if (typeof e.setTimeout !== 'function') e.setTimeout = returnThis
  if (typeof e.setNoDelay !== 'function') e.setNoDelay = returnThis
  return e
}

function returnThis (this: unknown): unknown { return this }

type SessionCallback = (err: Error | null, session: ClientHttp2Session | null) => void

/** One HTTP/2 session to a target, opened on first use and replaced when it ends (or has taken its most streams). */
class H2Upstream {
  private session: ClientHttp2Session | null = null
  /** Streams given the current session. */
  private streams = 0
  private waiting: SessionCallback[] | null = null
  private readonly slots: ConnectionSlots
  constructor (private readonly target: UpstreamTarget, private readonly idleMs: number, private readonly policy: ConnectionPolicy | null) {
    this.slots = new ConnectionSlots(policy?.gate ?? null)
  }

  get (cb: SessionCallback): void {
    const s = this.session
    if (s !== null && !s.closed && !s.destroyed) { this.give(s, cb); return }
    this.session = null
    if (this.waiting !== null) { this.waiting.push(cb); return }
    this.waiting = [cb]
    // One session at a time takes new streams: it is opened even at the limit (counted).
    const slot = this.slots.take(true) as SlotRelease
    dialWithin(this.target, this.policy?.limits.connectTimeoutMs ?? null).then((end) => { this.open(end, slot) }, (err) => {
      slot()
      this.settle(markConnectFailure(err), null)
    })
  }

  /** Hands `s` out for one stream: its last when that makes maxRequestsPerConnection (then it goes away once its streams end). */
  private give (s: ClientHttp2Session, cb: SessionCallback): void {
    const max = this.policy?.limits.maxRequestsPerConnection ?? null
    this.streams++
    if (max === null || this.streams < max) { cb(null, s); return }
    this.session = null
    cb(null, s)
    // Once the stream just opened is on its way (closing at once would cut it).
    setImmediate(() => { s.close() })
  }

  /** Uses `end` (already connected) as this target's session; `slot` is released when it closes. */
  open (end: RelayEnd, slot: SlotRelease | null = null): void {
    // The session owns the connection: the peer's FIN ends it (a relay's half-open
    // connection would keep a dead session open).
    end.allowHalfOpen = false
    end.resume()
    const session = h2connect('http://upstream', { createConnection: () => end, settings: { enablePush: false } })
    this.session = session
    this.streams = 0
    if (slot !== null) session.once('close', slot)
    session.on('error', () => {})
    session.on('goaway', () => { if (this.session === session) this.session = null })
    session.on('close', () => { if (this.session === session) this.session = null })
    session.setTimeout(this.idleMs, () => { session.close() })
    this.settle(null, session)
  }

  private settle (err: Error | null, s: ClientHttp2Session | null): void {
    const w = this.waiting
    this.waiting = null
    if (w === null) return
    // Each waiter takes a stream of the new session as any request does (a session that
    // reaches its most streams is replaced for the rest).
    for (const cb of w) {
      if (err !== null || s === null) cb(err, s)
      else this.get(cb)
    }
  }

  idle (): boolean { return this.session === null && this.waiting === null }

  close (): void { this.session?.close() }
}

export class UpstreamPools {
  private readonly h1 = new Map<string, DialAgent>()
  private readonly h2 = new Map<string, H2Upstream>()
  private readonly timer: NodeJS.Timeout

  /** `idleMs`: how long a pooled connection may stay idle (HttpLimits.upstreamIdleTimeoutMs). */
  constructor (private readonly idleMs: number) {
    this.timer = setInterval(() => { this.sweep() }, SWEEP_MS)
    this.timer.unref()
  }

  /** The HTTP/1.1 agent of a target (with `policy`: the pool of its backend's connection limits). */
  agent (target: UpstreamTarget, policy: ConnectionPolicy | null = null): Agent {
    const key = poolKey(target, policy)
    let a = this.h1.get(key)
    if (a === undefined) {
      a = new DialAgent(target, { keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, scheduling: 'lifo' }, policy?.limits.idleTimeoutMs ?? this.idleMs, policy)
      this.h1.set(key, a)
    }
    return a
  }

  /** The HTTP/2 session of a target (opened if needed; with `policy` as for `agent`). */
  session (target: UpstreamTarget, cb: SessionCallback, policy: ConnectionPolicy | null = null): void {
    this.h2Of(target, policy).get(cb)
  }

  /** A connection already made to `target` becomes its first pooled one. */
  seed (target: UpstreamTarget, version: 'http1' | 'http2', end: RelayEnd): void {
    if (version === 'http2') this.h2Of(target).open(end)
    else (this.agent(target) as DialAgent).seed(end)
  }

  /** `end`, seeded for `target` and still unused, is closed (its downstream is gone). */
  unseed (target: UpstreamTarget, end: RelayEnd): void {
    const a = this.h1.get(target.key)
    if (a !== undefined) a.unseed(end)
  }

  /** Drops pools with no connection left. */
  sweep (): void {
    for (const [k, a] of this.h1) if (a.idle()) { a.destroy(); this.h1.delete(k) }
    for (const [k, s] of this.h2) if (s.idle()) this.h2.delete(k)
  }

  size (): { http1: number, http2: number } { return { http1: this.h1.size, http2: this.h2.size } }

  close (): void {
    clearInterval(this.timer)
    for (const a of this.h1.values()) a.destroy()
    for (const s of this.h2.values()) s.close()
    this.h1.clear()
    this.h2.clear()
  }

  private h2Of (target: UpstreamTarget, policy: ConnectionPolicy | null = null): H2Upstream {
    const key = poolKey(target, policy)
    let s = this.h2.get(key)
    if (s === undefined) {
      s = new H2Upstream(target, policy?.limits.idleTimeoutMs ?? this.idleMs, policy)
      this.h2.set(key, s)
    }
    return s
  }
}

function poolKey (target: UpstreamTarget, policy: ConnectionPolicy | null): string {
  return policy === null ? target.key : `${target.key}|${policy.key}`
}

export const H2_CANCEL = constants.NGHTTP2_CANCEL
