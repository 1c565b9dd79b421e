import { ferryError, type FerryError } from '../errors'
import { MAX_MESSAGE_BYTES, SCM_MAX_FD } from '../native'

// The messages of a listener handoff between two agents of one node
// (docs/architecture.md, "Upgrades: the handoff"). Each is one SOCK_SEQPACKET
// record of JSON, at most MAX_MESSAGE_BYTES; the kernel keeps a record and its fds
// together. A session:
//
//   new → old  {"v":1,"type":"take"}
//   old → new  {"v":1,"type":"fds","keys":[…],"more":true}   + one fd per key
//   new → old  {"v":1,"type":"next"}                         (after each "more": true)
//   old → new  {"v":1,"type":"fds","keys":[…],"more":false}  + one fd per key
//      … the new agent starts serving on the fds, beside the old one …
//   new → old  {"v":1,"type":"commit"}   the new agent serves: stop accepting
//   old → new  {"v":1,"type":"done"}     the old agent no longer accepts
//
// Either side may answer {"v":1,"type":"error","code","message"} and close. A new agent
// that closes before "commit" gives the takeover up: the old agent serves on. Batches
// are lock-step (one "next" per batch) so neither side ever has more than one
// message of fds in flight.

export const HANDOFF_VERSION = 1
/** Keys are opaque to the protocol: printable ASCII, no spaces, at most this long. */
export const MAX_KEY_BYTES = 200
const KEY = /^[\x21-\x7e]+$/

export interface HandoffListener {
  /** Chosen by the agent, e.g. `pod/<uid>/outbound/4/w0`, `tunnel/w0`, `admin`, `ready`, `cni`. */
  readonly key: string
  readonly fd: number
}

export type HandoffMessage =
  | { readonly type: 'take' | 'next' | 'commit' | 'done' }
  | { readonly type: 'fds', readonly keys: readonly string[], readonly more: boolean }
  | { readonly type: 'error', readonly code: string, readonly message: string }

const TYPES = new Set(['take', 'next', 'commit', 'done', 'fds', 'error'])

export function encodeMessage (m: HandoffMessage): Buffer {
  const buf = Buffer.from(JSON.stringify({ v: HANDOFF_VERSION, ...m }))
  if (buf.length > MAX_MESSAGE_BYTES) throw ferryError('FERRY_ERR_HANDOFF', `a handoff message of ${buf.length} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit`)
  return buf
}

/** The message a record holds, checked against the fds that came with it; throws FERRY_ERR_HANDOFF saying what is wrong. */
export function decodeMessage (payload: Buffer, fdCount: number): HandoffMessage {
  let m: any
  try {
    m = JSON.parse(payload.toString('utf8'))
  } catch {
    throw protocolError(`not JSON (${payload.length} bytes starting ${JSON.stringify(payload.subarray(0, 16).toString('latin1'))})`)
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw protocolError('not a JSON object')
  if (m.v !== HANDOFF_VERSION) throw protocolError(`version ${JSON.stringify(m.v)}, this agent speaks ${HANDOFF_VERSION}`)
  if (typeof m.type !== 'string' || !TYPES.has(m.type)) throw protocolError(`unknown message type ${JSON.stringify(m.type)}`)
  if (m.type === 'fds') {
    if (!Array.isArray(m.keys) || typeof m.more !== 'boolean') throw protocolError('"fds" needs keys (an array) and more (a boolean)')
    for (const k of m.keys) checkKey(k)
    if (m.keys.length !== fdCount) throw protocolError(`"fds" names ${m.keys.length} keys but carries ${fdCount} fds`)
    return { type: 'fds', keys: m.keys, more: m.more }
  }
  if (fdCount > 0) throw protocolError(`"${String(m.type)}" carries ${fdCount} fds`)
  if (m.type === 'error') {
    if (typeof m.code !== 'string' || typeof m.message !== 'string') throw protocolError('"error" needs code and message strings')
    return { type: 'error', code: m.code.slice(0, 64), message: m.message.slice(0, 1024) }
  }
  return { type: m.type }
}

/** The owner's list, checked: valid keys, each once; fds are non-negative integers. */
export function checkListeners (list: readonly HandoffListener[]): readonly HandoffListener[] {
  if (!Array.isArray(list)) throw ferryError('FERRY_ERR_HANDOFF', 'listeners() must return an array of { key, fd }')
  const seen = new Set<string>()
  for (const l of list) {
    checkKey(l?.key)
    if (seen.has(l.key)) throw ferryError('FERRY_ERR_HANDOFF', `listener key ${l.key} is given twice`)
    seen.add(l.key)
    if (!Number.isInteger(l.fd) || l.fd < 0) throw ferryError('FERRY_ERR_HANDOFF', `listener ${l.key}: not an fd: ${String(l.fd)}`)
  }
  return list
}

/**
 * The list cut into messages of at most SCM_MAX_FD fds (and so at most
 * 253 × (MAX_KEY_BYTES + 3) bytes of keys: well inside MAX_MESSAGE_BYTES). An empty list
 * is one empty batch: the answer to "take" is always at least one message.
 */
export function batchesOf<T> (list: readonly T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += SCM_MAX_FD) out.push(list.slice(i, i + SCM_MAX_FD))
  return out.length === 0 ? [[]] : out
}

export function protocolError (what: string): FerryError {
  return ferryError('FERRY_ERR_HANDOFF', `handoff protocol error: ${what}`)
}

function checkKey (k: unknown): asserts k is string {
  if (typeof k !== 'string' || !KEY.test(k) || k.length > MAX_KEY_BYTES) {
    throw protocolError(`a key must be 1-${MAX_KEY_BYTES} printable ASCII characters without spaces, got ${JSON.stringify(k)?.slice(0, 80)}`)
  }
}
