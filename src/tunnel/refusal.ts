import { FerryError, type FerryErrorCode } from '../errors'
import type { PeerRejectReason } from '../identity/peer-verify'

// What the tunnel refuses, and how it says so. Refusals caused by traffic are reported
// to an `onRefused` hook (the agent logs and counts them) and never thrown. The client's
// open() rejects with a TunnelError whose code is stable and whose `reason` names the
// first thing that went wrong (the same word the hook gets).

/** Why a connection or stream was refused. PeerRejectReason values come from verifyTlsPeer. */
export type RefusalReason =
  | PeerRejectReason
  // Accept (server: before any TLS work; accept-gate.ts)
  | 'pending-limit'      // the node already has its maximum of unverified connections
  | 'rate-limit'         // the source address is over its handshakes per second
  | 'first-byte-timeout' // the client sent nothing within firstByteTimeoutMs
  // TLS (server: before a session exists; client: while connecting)
  | 'handshake'          // the TLS handshake failed: garbage, plaintext, an alert, a reset
  | 'handshake-timeout'  // no completed handshake within handshakeTimeoutMs (server)
  | 'no-sni'             // the client named no identity (server)
  | 'unknown-sni'        // the client named an identity this node does not serve (server)
  | 'no-alpn'            // the peer did not negotiate ALPN h2
  | 'certificate-expired' // this end's own certificate for the identity has expired, with no successor yet
  // HTTP/2 (server; buffer-stall and settings-timeout on either side)
  | 'session-error'      // the peer broke HTTP/2 (e.g. a header block over the hard limit): GOAWAY
  | 'settings-timeout'   // the peer did not acknowledge a smaller stream window in time: session destroyed
  | 'buffer-budget'      // the stream does not fit in the session's or node's buffer budget → REFUSED_STREAM
  | 'buffer-stall'       // an open stream backed up and the node's budget had no room for its buffers: reset (both sides)
  | 'method'             // not CONNECT → 405
  | 'authority'          // :authority is not ip:port → 400
  | 'headers'            // headers over maxHeaderListBytes → 431
  | 'decision-timeout'   // onStream did not answer in decisionTimeoutMs → 504
  | 'handler-error'      // onStream threw → 500
  | 'refused'            // onStream refused it (status and detail from the agent)

export type RefusalStage = 'accept' | 'handshake' | 'verify' | 'session' | 'stream'

export interface TunnelRefusal {
  /** Which side refused: the server (inbound) or the pool (outbound). */
  readonly side: 'server' | 'client'
  readonly stage: RefusalStage
  readonly reason: RefusalReason
  readonly detail: string
  /** The other end, "ip:port" (a peer node, or for the client the node it dialled). */
  readonly remote: string
  /** The SNI: sent (client) or received (server); null when none. */
  readonly servername: string | null
  /** Set once known: the verified peer (stream refusals), or the expected one (client). */
  readonly peerSpiffeId?: string
  readonly localSpiffeId?: string
  /** Stream refusals: the status answered and the requested authority. */
  readonly status?: number
  readonly authority?: string
}

export type RefusalHook = (refusal: TunnelRefusal) => void

/** Why open() failed, besides a peer-verification reason. */
export type OpenFailureReason =
  | 'connect' | 'handshake' | 'no-alpn' | 'timeout' | 'session-closed' | 'reset' | 'status' | 'closed'
  | 'certificate-expired' // the source's own certificate has expired (no successor yet): not presented
  | 'buffer-budget'       // this node's tunnel buffer budget has no room for another stream (FERRY_ERR_TUNNEL_BUSY)

export class TunnelError extends FerryError {
  readonly reason: OpenFailureReason | PeerRejectReason
  /** For FERRY_ERR_TUNNEL_REFUSED: the status the peer answered. */
  readonly status: number | null
  constructor (code: FerryErrorCode, reason: OpenFailureReason | PeerRejectReason, message: string, opts: { status?: number, cause?: unknown, errno?: string } = {}) {
    super(code, message, opts)
    this.name = 'TunnelError'
    this.reason = reason
    this.status = opts.status ?? null
  }
}

export function isTunnelError (err: unknown): err is TunnelError {
  return err instanceof TunnelError
}

/** First line of an error's message, for a refusal's detail (OpenSSL's can span lines). */
export function errorDetail (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown }
  const msg = typeof e?.message === 'string' ? e.message.split('\n')[0] : String(err)
  return typeof e?.code === 'string' ? `${e.code}: ${msg}` : msg
}
