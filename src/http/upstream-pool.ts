import { Agent, type AgentOptions } from 'node:http'
import { type ClientHttp2Session, connect as h2connect, constants } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { RelayEnd } from '../proxy/relay'
import { markConnectFailure, type UpstreamTarget } from './context'

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

const SWEEP_MS = 30_000

/** An http.Agent whose connections come from dial(), sockets or any Duplex. */
class DialAgent extends Agent {
  private seeded: RelayEnd | null = null
  /** The idle timer of each free connection (null while it carries a request). */
  private readonly idleTimers = new WeakMap<Duplex, { timer: NodeJS.Timeout | null }>()
  constructor (private readonly target: UpstreamTarget, opts: AgentOptions, private readonly idleMs: number) { super(opts) }

  /** A connection whose response ended is kept (unless Node's Agent declines): closed if still free after idleMs. */
  override keepSocketAlive (socket: Duplex): boolean {
    // Node's typings say void; Node's Agent destroys the connection when it returns falsy.
    const keep = super.keepSocketAlive(socket as Parameters<Agent['keepSocketAlive']>[0]) as unknown
    if (keep !== true) return false
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
    this.target.dial().then((s) => { s.allowHalfOpen = false; cb?.(null, socketLike(s)) }, (err) => { cb?.(markConnectFailure(err), undefined as unknown as Duplex) })
    return undefined
  }

  idle (): boolean {
    return this.seeded === null && Object.keys(this.sockets).length === 0 && Object.keys(this.freeSockets).length === 0 && Object.keys(this.requests).length === 0
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

/** One HTTP/2 session to a target, opened on first use and replaced when it ends. */
class H2Upstream {
  private session: ClientHttp2Session | null = null
  private waiting: SessionCallback[] | null = null
  constructor (private readonly target: UpstreamTarget, private readonly idleMs: number) {}

  get (cb: SessionCallback): void {
    const s = this.session
    if (s !== null && !s.closed && !s.destroyed) { cb(null, s); return }
    this.session = null
    if (this.waiting !== null) { this.waiting.push(cb); return }
    this.waiting = [cb]
    this.target.dial().then((end) => { this.open(end) }, (err) => { this.settle(markConnectFailure(err), null) })
  }

  /** Uses `end` (already connected) as this target's session. */
  open (end: RelayEnd): void {
    // The session owns the connection: the peer's FIN ends it (a relay's half-open
    // connection would keep a dead session open).
    end.allowHalfOpen = false
    end.resume()
    const session = h2connect('http://upstream', { createConnection: () => end, settings: { enablePush: false } })
    this.session = session
    session.on('error', () => {})
    session.on('goaway', () => { if (this.session === session) this.session = null })
    session.on('close', () => { if (this.session === session) this.session = null })
    session.setTimeout(this.idleMs, () => { session.close() })
    this.settle(null, session)
  }

  private settle (err: Error | null, s: ClientHttp2Session | null): void {
    const w = this.waiting
    this.waiting = null
    if (w !== null) for (const cb of w) cb(err, s)
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

  /** The HTTP/1.1 agent of a target. */
  agent (target: UpstreamTarget): Agent {
    let a = this.h1.get(target.key)
    if (a === undefined) {
      a = new DialAgent(target, { keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, scheduling: 'lifo' }, this.idleMs)
      this.h1.set(target.key, a)
    }
    return a
  }

  /** The HTTP/2 session of a target (opened if needed). */
  session (target: UpstreamTarget, cb: SessionCallback): void {
    this.h2Of(target).get(cb)
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

  private h2Of (target: UpstreamTarget): H2Upstream {
    let s = this.h2.get(target.key)
    if (s === undefined) {
      s = new H2Upstream(target, this.idleMs)
      this.h2.set(target.key, s)
    }
    return s
  }
}

export const H2_CANCEL = constants.NGHTTP2_CANCEL
