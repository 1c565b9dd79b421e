import { closeSync } from 'node:fs'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { peerCredentials, recvFds, sendFds, watchReadable, type FdWatch, type PeerCredentials } from '../native'
import { decodeMessage, encodeMessage, type HandoffMessage } from './protocol'

// One end of a handoff session: a connected SOCK_SEQPACKET socket, read from libuv's
// loop (watchReadable) into a short queue of decoded messages. What the peer sends
// wrong — garbage, a record too long, fds where none belong, a flood — ends the
// channel with a FERRY_ERR_HANDOFF; fds that arrived with a bad record are closed.
// close() is idempotent and closes the socket and any fds nobody received.

export interface Received { readonly message: HandoffMessage, readonly fds: number[] }

/** More unread messages than this is not a peer following the lock-step protocol. */
const MAX_QUEUED = 4

type Item = { ok: Received } | { end: FerryError }

export class Channel {
  readonly peer: PeerCredentials
  #fd: number
  #watch: FdWatch | null
  readonly #queue: Item[] = []
  #waiter: ((item: Item) => void) | null = null
  #ended = false
  #reset = false

  /** Takes ownership of `fd`; `maxFds` is the most fds one message may carry to us (0: none). */
  constructor (fd: number, private readonly maxFds: number) {
    this.#fd = fd
    try {
      this.peer = peerCredentials(fd)
      this.#watch = watchReadable(fd, () => { this.drain() })
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  send (m: HandoffMessage, fds: readonly number[] = []): void {
    if (this.#fd < 0) throw ferryError('FERRY_ERR_HANDOFF', 'the handoff channel is closed')
    const payload = encodeMessage(m)
    let sent: number
    try {
      sent = sendFds(this.#fd, payload, fds)
    } catch (err) {
      throw ferryError('FERRY_ERR_HANDOFF', `cannot send "${m.type}" to the other agent: ${(err as Error).message}`, { cause: err, errno: (err as FerryError).errno })
    }
    if (sent !== payload.length) throw ferryError('FERRY_ERR_HANDOFF', `"${m.type}" went out short (${sent} of ${payload.length} bytes)`)
  }

  /** Sends without failing: for a last word (an error) to a peer that may be gone. */
  trySend (m: HandoffMessage): void {
    try { this.send(m) } catch {}
  }

  /** The next message, within `timeoutMs` (Infinity: no limit); rejects with FERRY_ERR_HANDOFF on timeout, end of stream or a bad message. */
  async receive (timeoutMs: number, waitingFor: string): Promise<Received> {
    const item = this.#queue.shift() ?? await this.wait(timeoutMs, waitingFor)
    if ('end' in item) {
      this.#queue.unshift(item) // every later receive ends the same way
      throw item.end
    }
    return item.ok
  }

  /** The error the peer sent, if one is waiting (read now): its reason when a send fails because it already hung up. */
  peerError (): string | null {
    this.drain()
    for (const item of this.#queue) if ('ok' in item && item.ok.message.type === 'error') return item.ok.message.message
    return null
  }

  /** Closes the socket after reading what the peer sent last, so it sees our last word and the end (not a reset). */
  close (): void {
    this.stopWatching()
    if (this.#fd >= 0) this.discardPending()
    for (const item of this.#queue.splice(0)) if ('ok' in item) closeAll(item.ok.fds)
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = -1
    this.push({ end: ferryError('FERRY_ERR_HANDOFF', 'the handoff channel is closed') })
  }

  private async wait (timeoutMs: number, waitingFor: string): Promise<Item> {
    return await new Promise<Item>((resolve) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
          this.#waiter = null
          resolve({ end: ferryError('FERRY_ERR_HANDOFF', `the other agent sent no ${waitingFor} within ${Math.round(timeoutMs)} ms`) })
        }, Math.max(0, timeoutMs))
        : null
      this.#waiter = (item) => {
        if (timer !== null) clearTimeout(timer)
        resolve(item)
      }
    })
  }

  private push (item: Item): void {
    if ('end' in item) {
      if (this.#ended) return
      this.#ended = true
    }
    const waiter = this.#waiter
    this.#waiter = null
    if (waiter !== null) waiter(item)
    else this.#queue.push(item)
  }

  /**
   * Reads every waiting record (the watch is level-triggered). A peer that closed
   * without reading everything we sent makes the kernel report ECONNRESET before the
   * records it sent last (its error, typically): those are still read, then the end.
   */
  private drain (): void {
    while (!this.#ended && this.#fd >= 0) {
      let r: ReturnType<typeof recvFds>
      try {
        r = recvFds(this.#fd, this.maxFds)
      } catch (err) {
        if ((err as FerryError).errno === 'ECONNRESET' && !this.#reset) { this.#reset = true; continue }
        this.fail(ferryError('FERRY_ERR_HANDOFF', `bad record from the other agent: ${(err as Error).message}`, { cause: err, errno: (err as FerryError).errno }))
        return
      }
      if (r === null) return
      if (r.payload.length === 0 && r.fds.length === 0) {
        this.fail(ferryError('FERRY_ERR_HANDOFF', `the other agent ${this.#reset ? 'reset' : 'closed'} the handoff connection`))
        return
      }
      let message: HandoffMessage
      try {
        message = decodeMessage(r.payload, r.fds.length)
      } catch (err) {
        closeAll(r.fds)
        this.fail(isFerryError(err) ? err : ferryError('FERRY_ERR_HANDOFF', String(err)))
        return
      }
      if (this.#queue.length >= MAX_QUEUED) {
        closeAll(r.fds)
        this.fail(ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: more than ${MAX_QUEUED} messages unanswered`))
        return
      }
      this.push({ ok: { message, fds: r.fds } })
    }
  }

  private discardPending (): void {
    for (let i = 0; i < MAX_QUEUED + 1; i++) {
      try {
        const r = recvFds(this.#fd, this.maxFds)
        if (r === null || r.payload.length === 0) return
        closeAll(r.fds)
      } catch { return }
    }
  }

  private fail (err: FerryError): void {
    this.stopWatching()
    this.push({ end: err })
  }

  private stopWatching (): void {
    this.#watch?.close()
    this.#watch = null
  }
}

export function closeAll (fds: Iterable<number>): void {
  for (const fd of fds) { try { closeSync(fd) } catch {} }
}
