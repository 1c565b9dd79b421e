import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import { ferryError } from '../errors'
import { trace } from '../telemetry/trace'
import { type TunnelAuthority, parseAuthority, parseForwardedFor } from './authority'
import type { ServerSettings } from './options'
import type { RefusalReason } from './refusal'
import type { StreamLease } from './session-buffers'
import { TunnelStream } from './tunnel-stream'

// One stream on a verified server session: check it is a well-formed CONNECT, then let
// the agent decide (onStream) — accept() answers 200 and hands back the TunnelStream to
// relay, refuse(status) answers and closes. Nothing else is ever served on the port.
//
//   headers over maxHeaderListBytes  431   (a block over nghttp2's hard limit kills the
//                                           session instead: see server.ts)
//   method other than CONNECT        405   allow: CONNECT
//   :authority not ip:port           400
//   onStream threw                   500
//   no decision in decisionTimeoutMs 504
//   the client goes away first       request.signal aborts; accept() returns null

const TRACE = trace('tunnel')
const HPACK_FIELD_OVERHEAD = 32

/** What the server knows about a verified session, shared by its streams. */
export interface SessionPeer {
  readonly peerSpiffeId: string
  readonly peerCertSerial: string
  readonly localSpiffeId: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** "ip:port" of the peer node. */
  readonly remote: string
  readonly servername: string
}

export interface TunnelRequest {
  /** The original destination, parsed. */
  readonly authority: TunnelAuthority
  /** `:authority` as sent ("10.0.0.5:8080", "[fd00::5]:8080"). */
  readonly authorityText: string
  /** The verified client identity (the source workload). */
  readonly peerSpiffeId: string
  /** Serial (hex) of the client's certificate. */
  readonly peerCertSerial: string
  /** The identity this node presented, chosen by SNI: the destination must be a pod with it. */
  readonly localSpiffeId: string
  /** The peer node's address. */
  readonly remoteAddress: string
  readonly remotePort: number
  /** The original source address from `forwarded: for=`, if the client sent one (informational). */
  readonly forwardedFor: string | null
  /** Aborted when the client resets the stream (or the session ends) before an answer. */
  readonly signal: AbortSignal
  /** Answers 200 and returns the stream to relay; null if the stream is gone or already answered. */
  accept: () => TunnelStream | null
  /** Answers `status` (400–599) and closes the stream; `detail` goes to onRefused. No-op once answered. */
  refuse: (status: number, detail: string) => void
}

export function handleTunnelStream (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: readonly string[],
  peer: SessionPeer, s: ServerSettings, lease: StreamLease | null = null): void {
  // Errors of a stream are its reset or its session's end: outcomes, seen through 'close'.
  stream.on('error', () => {})
  const authorityText = headers[':authority'] ?? ''

  function refuse (reason: RefusalReason, status: number, detail: string, extra?: Record<string, string>): void {
    if (!stream.destroyed && !stream.closed && !stream.headersSent) stream.respond({ ':status': status, ...extra }, { endStream: true })
    s.onRefused({
      side: 'server',
      stage: 'stream',
      reason,
      detail,
      remote: peer.remote,
      servername: peer.servername,
      peerSpiffeId: peer.peerSpiffeId,
      localSpiffeId: peer.localSpiffeId,
      status,
      authority: authorityText.slice(0, 64)
    })
  }

  const size = headerListBytes(rawHeaders)
  if (size > s.maxHeaderListBytes) return refuse('headers', 431, `${size} bytes of headers, limit ${s.maxHeaderListBytes}`)
  const method = headers[':method']
  if (method !== 'CONNECT') return refuse('method', 405, `method ${String(method).slice(0, 16)} is not CONNECT`, { allow: 'CONNECT' })
  const authority = parseAuthority(authorityText)
  if (authority === null) return refuse('authority', 400, 'the :authority is not an ip:port')

  const abort = new AbortController()
  let answered = false
  const timer = setTimeout(() => {
    if (answered) return
    answered = true
    abort.abort()
    refuse('decision-timeout', 504, `no decision within ${s.decisionTimeoutMs} ms`)
  }, s.decisionTimeoutMs)
  stream.once('close', () => {
    clearTimeout(timer)
    if (!answered) { answered = true; abort.abort() }
  })

  const request: TunnelRequest = {
    authority,
    authorityText,
    peerSpiffeId: peer.peerSpiffeId,
    peerCertSerial: peer.peerCertSerial,
    localSpiffeId: peer.localSpiffeId,
    remoteAddress: peer.remoteAddress,
    remotePort: peer.remotePort,
    forwardedFor: parseForwardedFor(headers.forwarded),
    signal: abort.signal,
    accept () {
      if (answered || stream.destroyed || stream.closed) return null
      answered = true
      clearTimeout(timer)
      stream.respond({ ':status': 200 })
      if (TRACE.on) TRACE('stream accepted', { peer: peer.peerSpiffeId, local: peer.localSpiffeId, authority: authorityText })
      return new TunnelStream(stream, { peerSpiffeId: peer.peerSpiffeId, peerCertSerial: peer.peerCertSerial, localSpiffeId: peer.localSpiffeId, authority: authorityText, remoteAddress: peer.remoteAddress, remotePort: peer.remotePort }, lease)
    },
    refuse (status, detail) {
      if (!Number.isInteger(status) || status < 400 || status > 599) throw ferryError('FERRY_ERR_INVALID_ARG', `a tunnel refusal status must be 400–599, not ${status}`)
      if (answered) return
      answered = true
      clearTimeout(timer)
      refuse('refused', status, detail)
    }
  }
  try {
    s.onStream(request)
  } catch (err) {
    if (answered) return
    answered = true
    clearTimeout(timer)
    abort.abort()
    refuse('handler-error', 500, `onStream threw: ${(err as Error)?.message ?? String(err)}`)
  }
}

/** SETTINGS_MAX_HEADER_LIST_SIZE accounting (RFC 9113 §6.5.2): name + value + 32 per field. */
function headerListBytes (raw: readonly string[]): number {
  let n = 0
  for (let i = 0; i < raw.length; i++) n += raw[i].length
  return n + (raw.length >> 1) * HPACK_FIELD_OVERHEAD
}
