import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { TunnelAdmission } from './admission'
import type { RefusalReason } from './refusal'

// The tunnel port's listener, in front of TLS. Every TCP connection is accepted paused
// and judged before any TLS object exists:
//
//   1. admission (admission.ts): over the node-wide pending bound, or over its source's
//      handshake rate → reset at once (RST: nothing lingers in FIN_WAIT or TIME_WAIT on
//      this side) and reported; the fd lives for microseconds
//   2. admitted: the connection holds a pending slot. It must send its first byte within
//      firstByteMs, else it is reset (`first-byte-timeout`): a silent connection costs
//      one fd and a timer, and only briefly
//   3. its first bytes arrive: they are handed, with the socket, to the TLS server
//      (`onReady`); Node's TLS socket takes what was already read as if it had just
//      arrived (the sniffing pattern of tls.Server's 'connection' event)
//   4. the slot is given back when the tunnel server has verified the peer
//      (`verified()`), or when the connection closes, whichever comes first
//
// The per-connection cost is one admission check (a hash and two atomic operations), a
// timer and one extra read callback; nothing per byte. Established sessions are pooled
// and long-lived, so this runs once per session, not per tunnelled connection.

/**
 * Where the gate listens: an address and port, or a listening socket made elsewhere (the
 * agent's listener with kernel admission, src/tunnel-syn), by fd. Node listens again on
 * an fd with its own default backlog unless one is given, so the fd's owner passes its own.
 */
export type GateListenTarget =
  | { readonly host: string, readonly port: number, readonly backlog?: number }
  | { readonly fd: number, readonly backlog: number }

export interface GateHooks {
  /** An admitted connection has sent its first bytes: start TLS on it. */
  readonly onReady: (raw: Socket) => void
  /** A connection was closed by the gate. */
  readonly onRefused: (raw: Socket, reason: RefusalReason, detail: string) => void
}

interface Slot { released: boolean }

export class AcceptGate {
  private readonly server: Server
  /** Connections holding a pending slot, by "address port" of the peer (see verified()). */
  private readonly slots = new Map<string, Slot[]>()
  /** Every socket the gate accepted and that is not closed yet (for close()). */
  readonly sockets = new Set<Socket>()
  private closed: Promise<void> | null = null

  constructor (private readonly admission: TunnelAdmission, private readonly firstByteMs: number, private readonly now: () => number, private readonly hooks: GateHooks) {
    this.server = createServer({ pauseOnConnect: true }, (raw) => { this.onConnection(raw) })
  }

  async listen (target: GateListenTarget): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(target, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    // After listening, errors are accept failures (EMFILE, ...): the server keeps going.
    this.server.on('error', () => {})
    return this.server.address() as AddressInfo
  }

  /** Stops accepting; resolves once the listener is closed (open connections are the caller's). The same promise on every call. */
  async close (): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => { this.server.close(() => { resolve() }) })
    await this.closed
  }

  /** The tunnel server verified the peer at `address`:`port`: its slot is free. */
  verified (address: string, port: number): void {
    const key = `${address} ${port}`
    const list = this.slots.get(key)
    if (list === undefined) return
    // Two live connections share a key only from one peer address and port to two local
    // addresses; releasing either keeps the count exact (each slot is released once).
    for (const slot of list) {
      if (slot.released) continue
      slot.released = true
      this.admission.release()
      return
    }
  }

  private onConnection (raw: Socket): void {
    const address = raw.remoteAddress
    const port = raw.remotePort
    if (address === undefined || port === undefined) { raw.destroy(); return }
    const refusal = this.admission.admit(address, this.now())
    if (refusal !== null) {
      raw.on('error', () => {})
      raw.resetAndDestroy()
      this.hooks.onRefused(raw, refusal, refusal === 'rate-limit'
        ? `over ${this.admission.limits.perSourcePerSecond} handshakes per second (burst ${this.admission.limits.perSourceBurst}) from this source`
        : `${this.admission.limits.pendingMax} unverified connections already open on this node`)
      return
    }
    const key = `${address} ${port}`
    const slot: Slot = { released: false }
    const list = this.slots.get(key)
    if (list === undefined) this.slots.set(key, [slot])
    else list.push(slot)
    this.sockets.add(raw)
    raw.on('error', () => {})
    raw.once('close', () => {
      this.sockets.delete(raw)
      const l = this.slots.get(key)
      if (l !== undefined) {
        const i = l.indexOf(slot)
        if (i >= 0) l.splice(i, 1)
        if (l.length === 0) this.slots.delete(key)
      }
      if (!slot.released) {
        slot.released = true
        this.admission.release()
      }
    })
    const timer = setTimeout(() => {
      raw.off('data', onData)
      raw.resetAndDestroy()
      this.hooks.onRefused(raw, 'first-byte-timeout', `no byte within ${this.firstByteMs} ms of the connection`)
    }, this.firstByteMs)
    const onData = (chunk: Buffer): void => {
      clearTimeout(timer)
      raw.pause()
      raw.unshift(chunk)
      this.hooks.onReady(raw)
    }
    raw.once('data', onData)
    raw.once('close', () => { clearTimeout(timer) })
    raw.resume()
  }
}
