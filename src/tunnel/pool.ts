import { isIPv4, isIPv6 } from 'node:net'
import { ferryError } from '../errors'
import { parseSpiffeId, type SpiffeId } from '../identity/spiffe-id'
import type { Svid } from '../identity/svid'
import { formatAuthority, forwardedFor, parseAuthority } from './authority'
import { PooledSession } from './client-session'
import { TUNNEL_DEFAULTS } from './defaults'
import { MAX_RETRIES, OpenAttempt, type OpenTarget } from './open-attempt'
import { poolSettings, type PoolSettings, type TunnelPoolOptions } from './options'
import { TunnelError } from './refusal'
import type { TunnelStream } from './tunnel-stream'

// The client end: open() a CONNECT stream to a pod behind a peer node's tunnel port,
// sharing sessions. The pool key is
//
//   (source identity, destination identity, destination node address:port)
//
// — finer than "per (source identity, node)": a server presents one certificate per TLS
// connection (chosen by SNI), and the client verifies that certificate against the
// identity discovery expects, so two destination identities on one node need two sessions.
//
//   - opens go to the first session of the key with room (active + queued < capacity,
//     capacity = min(maxStreamsPerSession, the server's MAX_CONCURRENT_STREAMS)), else a
//     new session is dialled
//   - rotation: sourceSvid() is read on every open; sessions of the key made with an
//     older SVID drain (their streams finish, no new ones) and new sessions use the new one;
//     an expired SVID is not used (FERRY_ERR_TUNNEL_CONNECT certificate-expired), and a
//     session drains by itself when its own or the peer's certificate expires
//   - GOAWAY drains a session; a stream refused before its answer is retried on a session
//     made after the refusal (up to MAX_RETRIES times)
//   - closed sessions are forgotten at once; idle ones close after idleTimeoutMs

export interface TunnelOpenRequest {
  /** The source workload's current SVID (read at every open: rotation is picked up). */
  readonly sourceSvid: () => Svid
  /** The identity discovery expects the destination to have; the server must prove it. */
  readonly expectedPeer: SpiffeId | string
  /** The destination node's tunnel address (port 15008 in production). */
  readonly node: { readonly address: string, readonly port: number }
  /** The original destination: "ip:port" / "[ip6]:port", or an address and port. */
  readonly authority: string | { readonly address: string, readonly port: number }
  /** The original source address, sent as `forwarded: for=` (informational). */
  readonly sourceAddress?: string
}

export interface TunnelPoolStats {
  /** Sessions not yet closed (connecting, ready or draining). */
  readonly sessions: number
  /** Of those, sessions taking no new streams (GOAWAY received, SVID rotated, idle). */
  readonly draining: number
  /** Streams requested and not yet closed. */
  readonly streams: number
  /** Distinct pool keys with at least one session. */
  readonly keys: number
}

export class TunnelPool {
  private readonly s: PoolSettings
  private readonly buckets = new Map<string, Set<PooledSession>>()
  private closing = false
  /** Sessions made so far (numbers them: see OpenAttempt.minSessionSeq). */
  private sessionSeq = 0

  constructor (opts: TunnelPoolOptions = {}) {
    this.s = poolSettings(opts)
  }

  /**
   * A stream to `authority` through the node's tunnel, once the peer has answered 200.
   * Rejects with a TunnelError: FERRY_ERR_TUNNEL_CONNECT, FERRY_ERR_TUNNEL_PEER or
   * FERRY_ERR_TUNNEL_REFUSED (reason and status say more); FERRY_ERR_INVALID_ARG for a
   * malformed request.
   */
  async open (req: TunnelOpenRequest): Promise<TunnelStream> {
    const target = this.targetOf(req)
    if (this.closing) throw new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'closed', 'the tunnel pool is closed')
    return await new Promise<TunnelStream>((resolve, reject) => {
      const attempt = new OpenAttempt(target, this.s.openTimeoutMs, (a) => {
        a.fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'timeout', `tunnel to ${target.authority} via ${target.remote}: not answered within ${this.s.openTimeoutMs} ms`))
      }, resolve, reject)
      this.place(attempt)
    })
  }

  stats (): TunnelPoolStats {
    let sessions = 0
    let draining = 0
    let streams = 0
    for (const bucket of this.buckets.values()) {
      for (const session of bucket) {
        sessions++
        streams += session.active
        if (session.state === 'draining') draining++
      }
    }
    return { sessions, draining, streams, keys: this.buckets.size }
  }

  /** No new opens; sessions drain (GOAWAY) and what is left after graceMs is destroyed. */
  async close (graceMs: number = TUNNEL_DEFAULTS.closeGraceMs): Promise<void> {
    this.closing = true
    const all = [...this.buckets.values()].flatMap((b) => [...b])
    for (const session of all) session.drain()
    const deadline = Date.now() + graceMs
    while (this.stats().sessions > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    for (const session of [...this.buckets.values()].flatMap((b) => [...b])) session.destroy()
  }

  private targetOf (req: TunnelOpenRequest): OpenTarget {
    const { node } = req
    if (typeof node?.address !== 'string' || !(isIPv4(node.address) || isIPv6(node.address)) || !Number.isInteger(node.port) || node.port < 1 || node.port > 65535) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel node ${JSON.stringify(node)} is not an IP address and port`)
    }
    const authorityText = typeof req.authority === 'string' ? req.authority : formatAuthority(req.authority)
    const authority = parseAuthority(authorityText)
    if (authority === null) throw ferryError('FERRY_ERR_INVALID_ARG', `tunnel authority "${String(authorityText).slice(0, 80)}" is not ip:port`)
    const expected = typeof req.expectedPeer === 'string' ? parseSpiffeId(req.expectedPeer).uri : req.expectedPeer.uri
    const svid = req.sourceSvid()
    const remote = formatAuthority(node)
    // An expired SVID is never presented (the peer would refuse it, and say less).
    if (this.s.now() > svid.notAfter) {
      throw new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'certificate-expired', `tunnel to ${remote}: the certificate of ${svid.spiffeId.uri} expired at ${new Date(svid.notAfter).toISOString()} and has no successor yet`)
    }
    const canonical = formatAuthority(authority)
    const fwd = req.sourceAddress === undefined ? null : forwardedFor(req.sourceAddress)
    return {
      key: `${svid.spiffeId.uri} ${expected} ${remote}`,
      svid,
      expected,
      node: { address: node.address, port: node.port },
      remote,
      authority: canonical,
      headers: fwd === null ? { ':method': 'CONNECT', ':authority': canonical } : { ':method': 'CONNECT', ':authority': canonical, forwarded: fwd }
    }
  }

  private place (a: OpenAttempt): void {
    if (a.settled) return
    if (this.closing) { a.fail(new TunnelError('FERRY_ERR_TUNNEL_CONNECT', 'closed', 'the tunnel pool is closed')); return }
    const t = a.target
    let bucket = this.buckets.get(t.key)
    if (bucket === undefined) {
      bucket = new Set()
      this.buckets.set(t.key, bucket)
    }
    let chosen: PooledSession | null = null
    let learned = Number.MAX_SAFE_INTEGER
    for (const session of bucket) {
      // Rotation: a session made with an older certificate of this identity takes no new streams.
      if (session.svid !== t.svid) { if (session.svid.notBefore <= t.svid.notBefore) session.drain(); continue }
      if (session.state === 'ready') learned = Math.min(learned, session.capacity)
      if (chosen === null && session.seq >= a.minSessionSeq && session.hasRoom()) chosen = session
    }
    if (chosen === null) {
      chosen = new PooledSession(t.key, t.svid, t.expected, t.node, t.remote, this.s, {
        overflow: (attempts) => { for (const x of attempts) this.place(x) },
        retry: (x, cause) => { this.retry(x, cause) },
        closed: (session) => { this.forget(session) }
      }, learned)
      chosen.seq = this.sessionSeq++
      bucket.add(chosen)
      chosen.connect()
    }
    chosen.add(a)
  }

  private retry (a: OpenAttempt, cause: TunnelError): void {
    if (a.settled) return
    if (a.retries >= MAX_RETRIES) { a.fail(cause); return }
    a.retries++
    // Not on a session that was there when it was refused: it may be going away too.
    a.minSessionSeq = this.sessionSeq
    this.place(a)
  }

  private forget (session: PooledSession): void {
    const bucket = this.buckets.get(session.key)
    if (bucket === undefined) return
    bucket.delete(session)
    if (bucket.size === 0) this.buckets.delete(session.key)
  }
}
