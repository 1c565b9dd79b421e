import { closeSync, rmSync, statSync } from 'node:fs'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { dupFd, unixAccept, unixListen, watchReadable, type FdWatch } from '../native'
import type { Logger } from '../telemetry/logger'
import { Channel, closeAll } from './channel'
import { batchesOf, checkListeners, type HandoffListener } from './protocol'
import { checkSocketPath, HANDOFF_SOCKET_MODE, peerAllowed, prepareSocketPath } from './socket-path'

// The old agent's side of a handoff (protocol.ts): a SOCK_SEQPACKET socket at `path`
// that a new agent of the same node connects to. On "take" the server asks its owner
// for the listening sockets (`listeners()`), duplicates them at once (the owner may
// close one meanwhile: the duplicate keeps what was listed alive until sent) and sends
// them in batches; from then on both agents hold the same kernel sockets and both may
// accept. On "commit" it calls `onHandedOff()` — the owner stops accepting (closes its
// servers: the sockets live on in the new agent, with their queued connections) — and
// answers "done"; then it stops listening, for good. A new agent that goes away before
// committing gives the takeover up: the owner is told and keeps serving, and the
// server listens for the next one.
//
// One takeover at a time (another peer meanwhile is answered "busy"); peers that are
// not root or our own uid are refused before anything is sent. The socket file is left
// in place when the server hands off (the new agent replaces it with its own) and
// removed on close() otherwise, if it is still ours.

export interface HandoffServerOptions {
  /** Where to listen, e.g. `<state dir>/handoff.sock`; its directory must be root's (or ours) and writable by nobody else. */
  readonly path: string
  /** The listening sockets to hand over, by key (fds borrowed: the server duplicates what it sends). */
  readonly listeners: () => readonly HandoffListener[]
  /** The new agent serves: stop accepting (resolve once no server of ours accepts), then drain. */
  readonly onHandedOff: () => void | Promise<void>
  /** A new agent holds our sockets and may commit (e.g. answer readiness 503: a probe that reaches us is not about the new agent). */
  readonly onTakeoverStarted?: () => void
  /** The new agent went away before committing: we serve on. */
  readonly onTakeoverAbandoned?: (reason: FerryError) => void
  readonly log: Logger
  /** How long a peer may take to ask ("take", "next"). Default 5 s. "commit" may take as long as the new agent needs to be ready. */
  readonly requestTimeoutMs?: number
}

/** What the old agent logs once the new one has committed and it has stopped accepting (the lab waits for it). */
export const HANDED_OFF_MESSAGE = 'handed off: the new agent serves'

export type HandoffServerState = 'listening' | 'taking' | 'handed-off' | 'closed'

const DEFAULT_REQUEST_TIMEOUT_MS = 5_000

export class HandoffServer {
  #state: HandoffServerState = 'listening'
  #fd: number
  #watch: FdWatch | null
  #inode: number
  #session: Channel | null = null
  #done: Promise<void> = Promise.resolve()

  private constructor (readonly path: string, private readonly o: HandoffServerOptions, fd: number) {
    this.#fd = fd
    this.#inode = statSync(path).ino
    this.#watch = watchReadable(fd, () => { this.acceptAll() })
  }

  /** Listens at `path` (a stale socket there is replaced: take over from whoever listened first). */
  static listen (o: HandoffServerOptions): HandoffServer {
    const path = checkSocketPath(o.path)
    prepareSocketPath(path)
    const fd = unixListen({ path, type: 'seqpacket', mode: HANDOFF_SOCKET_MODE })
    try {
      const server = new HandoffServer(path, o, fd)
      o.log.info({ socket: path }, 'handoff socket listening')
      return server
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  get state (): HandoffServerState { return this.#state }

  /** Settles when the takeover in progress (if any) has ended, either way. */
  async idle (): Promise<void> { await this.#done }

  /** Stops listening and ends a takeover in progress (the new agent sees the connection close). */
  close (): void {
    if (this.#state === 'closed') return
    const handedOff = this.#state === 'handed-off'
    this.#state = 'closed'
    this.#session?.close()
    this.stopListening()
    if (!handedOff) {
      try { if (statSync(this.path).ino === this.#inode) rmSync(this.path) } catch {}
    }
  }

  private acceptAll (): void {
    while (this.#fd >= 0) {
      let fd: number | null
      try {
        fd = unixAccept(this.#fd)
      } catch (err) {
        this.o.log.error({ err, socket: this.path }, 'handoff socket: accept failed')
        return
      }
      if (fd === null) return
      this.admit(fd)
    }
  }

  private admit (fd: number): void {
    let ch: Channel
    try {
      ch = new Channel(fd, 0)
    } catch (err) {
      this.o.log.warn({ err }, 'handoff: cannot serve a connection')
      return
    }
    const peer = ch.peer
    if (!peerAllowed(peer)) {
      this.o.log.warn({ peer }, 'handoff refused: the peer is neither root nor our uid')
      ch.trySend({ type: 'error', code: 'FERRY_ERR_HANDOFF', message: `uid ${peer.uid} may not take this agent's listeners` })
      ch.close()
      return
    }
    if (this.#session !== null || this.#state !== 'listening') {
      this.o.log.warn({ peer }, 'handoff refused: another takeover is in progress')
      ch.trySend({ type: 'error', code: 'FERRY_ERR_HANDOFF', message: 'busy: another agent is taking over' })
      ch.close()
      return
    }
    this.#session = ch
    this.#done = this.serve(ch).finally(() => {
      ch.close()
      this.#session = null
    })
  }

  private async serve (ch: Channel): Promise<void> {
    const log = this.o.log.child({ peer: ch.peer })
    try {
      await this.expect(ch, 'take', this.requestTimeoutMs)
      await this.send(ch, log)
      await this.expect(ch, 'commit', Infinity)
    } catch (err) {
      const error = isFerryError(err) ? err : ferryError('FERRY_ERR_HANDOFF', `handoff failed: ${(err as Error).message}`, { cause: err })
      if (this.#state === 'closed') return
      const started = this.#state === 'taking'
      this.#state = 'listening'
      log.warn({ code: error.code, err: error.message, started }, started ? 'handoff abandoned: serving on' : 'handoff refused')
      ch.trySend({ type: 'error', code: error.code, message: error.message })
      if (started) this.notify('onTakeoverAbandoned', () => this.o.onTakeoverAbandoned?.(error))
      return
    }
    if (this.#state === 'closed') return
    this.#state = 'handed-off'
    this.stopListening()
    try {
      await this.o.onHandedOff()
      ch.trySend({ type: 'done' })
      log.info(HANDED_OFF_MESSAGE)
    } catch (err) {
      log.error({ err }, 'handed off, but stopping our own servers failed')
      ch.trySend({ type: 'error', code: 'FERRY_ERR_HANDOFF', message: `the old agent could not stop accepting: ${(err as Error).message}` })
    }
  }

  /** Sends every listener, in lock-step batches; the takeover has started once the list is made. */
  private async send (ch: Channel, log: Logger): Promise<void> {
    const list = checkListeners(this.o.listeners())
    const dups: HandoffListener[] = []
    try {
      for (const l of list) dups.push({ key: l.key, fd: dupFd(l.fd) })
    } catch (err) {
      closeAll(dups.map((d) => d.fd))
      throw err
    }
    const batches = batchesOf(dups)
    log.info({ listeners: dups.length, batches: batches.length }, 'handoff: a new agent is taking over our listeners')
    this.#state = 'taking'
    this.notify('onTakeoverStarted', () => this.o.onTakeoverStarted?.())
    let sent = 0
    try {
      for (const [i, batch] of batches.entries()) {
        const more = i < batches.length - 1
        ch.send({ type: 'fds', keys: batch.map((b) => b.key), more }, batch.map((b) => b.fd))
        sent++
        closeAll(batch.map((b) => b.fd))
        if (more) await this.expect(ch, 'next', this.requestTimeoutMs)
      }
    } catch (err) {
      closeAll(batches.slice(sent).flat().map((b) => b.fd))
      throw err
    }
  }

  private async expect (ch: Channel, type: 'take' | 'next' | 'commit', timeoutMs: number): Promise<void> {
    const { message } = await ch.receive(timeoutMs, `"${type}"`)
    if (message.type === 'error') throw ferryError('FERRY_ERR_HANDOFF', `the new agent gave up: ${message.message}`)
    if (message.type !== type) throw ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: expected "${type}", got "${message.type}"`)
  }

  /** The owner's hooks are told, never allowed to break the session. */
  private notify (hook: string, fn: () => void): void {
    try { fn() } catch (err) { this.o.log.error({ err, hook }, 'handoff: the owner\'s hook failed') }
  }

  private get requestTimeoutMs (): number { return this.o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS }

  private stopListening (): void {
    this.#watch?.close()
    this.#watch = null
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = -1
  }
}
