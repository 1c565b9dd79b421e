import { ferryError, type FerryError, isFerryError } from '../errors'
import { SCM_MAX_FD, unixConnect, type PeerCredentials } from '../native'
import { Channel, closeAll } from './channel'
import { checkSocketPath, peerAllowed } from './socket-path'

// The new agent's side of a handoff (protocol.ts). takeOver() connects to the old
// agent's socket and receives every listening socket it holds, by key; nobody there
// (no file, or nobody listening: a first start, or the old agent crashed) is a fresh
// start: null. Until complete() the old agent keeps accepting beside us — both hold
// the same kernel sockets — so the new agent can adopt what it needs, start serving,
// and call complete() once it is ready: only then does the old agent stop accepting.
// A new agent that never gets ready (or calls abandon(), or dies) leaves the old one
// serving. Everything is bounded by deadlines: a wedged old agent cannot hang a start.

export interface Takeover {
  /** The old agent's listening sockets, by key: close-on-exec fds that are ours to adopt (net.Server.listen({ fd })) or close. */
  readonly listeners: ReadonlyMap<string, number>
  /** Who handed them over (SO_PEERCRED). */
  readonly from: PeerCredentials
  /** The fd under `key`, now the caller's (adopted); undefined if none came or it was adopted already. */
  adopt: (key: string) => number | undefined
  /** Closes every fd nobody adopted (a pod that left, a worker count that shrank); returns their keys. */
  closeUnadopted: () => string[]
  /**
   * Tells the old agent we serve: it stops accepting and drains. Resolves once it has
   * stopped accepting; rejects (FERRY_ERR_HANDOFF) if it did not say so within
   * `timeoutMs` (default 10 s) — we serve either way.
   */
  complete: (opts?: { timeoutMs?: number }) => Promise<void>
  /** Gives the takeover up: the old agent serves on. Fds not adopted yet stay ours to close. */
  abandon: () => void
}

export interface TakeOverOptions {
  /** The whole exchange (connect and every batch) must finish within this. */
  readonly timeoutMs: number
}

const DEFAULT_COMMIT_TIMEOUT_MS = 10_000

/** The old agent's listeners, or null when no agent listens at `path`. Throws FERRY_ERR_HANDOFF when one does but the handoff fails (no fd is left open then). */
export async function takeOver (path: string, o: TakeOverOptions): Promise<Takeover | null> {
  checkSocketPath(path)
  if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0) throw ferryError('FERRY_ERR_INVALID_ARG', `takeOver: timeoutMs must be a positive number, got ${String(o.timeoutMs)}`)
  const deadline = Date.now() + o.timeoutMs
  let fd: number
  try {
    fd = unixConnect(path, 'seqpacket')
  } catch (err) {
    const errno = (err as FerryError).errno
    if (errno === 'ENOENT' || errno === 'ECONNREFUSED') return null
    throw ferryError('FERRY_ERR_HANDOFF', `cannot reach the old agent at ${path}: ${(err as Error).message}`, { cause: err, errno })
  }
  const ch = new Channel(fd, SCM_MAX_FD)
  const got = new Map<string, number>()
  try {
    if (!peerAllowed(ch.peer)) throw ferryError('FERRY_ERR_HANDOFF', `${path} is served by uid ${ch.peer.uid} (pid ${ch.peer.pid}), neither root nor ours: not taking its sockets`)
    ch.send({ type: 'take' })
    for (;;) {
      const { message, fds } = await ch.receive(deadline - Date.now(), 'listeners')
      if (message.type === 'error') throw ferryError('FERRY_ERR_HANDOFF', `the old agent refused the handoff: ${message.message}`)
      if (message.type !== 'fds') throw ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: expected "fds", got "${message.type}"`)
      for (const [i, key] of message.keys.entries()) {
        if (got.has(key)) {
          closeAll(fds)
          throw ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: key ${key} sent twice`)
        }
        got.set(key, fds[i])
      }
      if (!message.more) break
      ch.send({ type: 'next' })
    }
  } catch (err) {
    // The old agent may have refused (busy, not allowed) and hung up before our request went out: its reason is waiting.
    const said = ch.peerError()
    ch.trySend({ type: 'error', code: 'FERRY_ERR_HANDOFF', message: (err as Error).message })
    ch.close()
    closeAll(got.values())
    if (said !== null && !(err as Error).message.includes(said)) throw ferryError('FERRY_ERR_HANDOFF', `the old agent refused the handoff: ${said}`, { cause: err })
    throw isFerryError(err) ? err : ferryError('FERRY_ERR_HANDOFF', `handoff failed: ${(err as Error).message}`, { cause: err })
  }
  let finished = false
  const pending = new Map(got)
  return {
    listeners: got,
    from: ch.peer,
    adopt: (key) => {
      const fd = pending.get(key)
      pending.delete(key)
      return fd
    },
    closeUnadopted: () => {
      const keys = [...pending.keys()]
      closeAll(pending.values())
      pending.clear()
      return keys
    },
    complete: async (c = {}) => {
      if (finished) throw ferryError('FERRY_ERR_HANDOFF', 'this takeover is already completed or abandoned')
      finished = true
      try {
        ch.send({ type: 'commit' })
        const { message } = await ch.receive(c.timeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS, '"done"')
        if (message.type === 'error') throw ferryError('FERRY_ERR_HANDOFF', `the old agent answered the commit with an error: ${message.message}`)
        if (message.type !== 'done') throw ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: expected "done", got "${message.type}"`)
      } finally {
        ch.close()
      }
    },
    abandon: () => {
      finished = true
      ch.close()
    }
  }
}
