import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Readable, Writable } from 'node:stream'
import type { ConnectionPolicy } from '../routing/model'
import type { UpstreamTarget } from './context'
import type { HttpEngineDeps } from './engine'

// The two sides of a routed request (forward-routed.ts, attempts.ts) as the attempt loop
// sees them, whatever the HTTP versions: the downstream the response goes to
// (downstream-h1.ts, downstream-h2.ts) and one attempt's upstream exchange
// (upstream-h1.ts, upstream-h2.ts). Only requests with a route go through these: the
// plain path (forward-*.ts) keeps its direct code.

/** Where the response goes. */
export interface RoutedDownstream {
  /** The request body as it arrives; null when the request has none. */
  readonly body: Readable | null
  /** The response's headers were sent: from then on a failure can only cut it. */
  readonly started: boolean
  /** The client is gone (its connection or stream closed). */
  readonly gone: boolean
  /** Response headers (end-to-end, lower case); `endStream`: no body follows. */
  respond (status: number, headers: OutgoingHttpHeaders, endStream: boolean): void
  /** A body chunk; false: wait for `onDrain`. */
  write (chunk: Buffer): boolean
  onDrain (cb: () => void): void
  /** Ends the response, with trailers when there are some. */
  end (trailers: OutgoingHttpHeaders | null): void
  /** Cuts a response already begun (HTTP/1.1: the connection is reset; HTTP/2: the stream, INTERNAL_ERROR). */
  reset (): void
  /** The upstream's 100 Continue (HTTP/1.1 clients that sent Expect). */
  continue (): void
  /**
   * A response the proxy makes itself: a gRPC request gets a trailers-only answer with
   * `grpcStatus` and `body` as grpc-message; others `status`, `headers` and `body` as text.
   */
  answer (status: number, headers: OutgoingHttpHeaders | null, body: string, grpcStatus: number): void
}

/** What an upstream exchange reports, in order: response, data…, trailers?, end; or failed at any point. */
export interface UpstreamEvents {
  response (status: number, headers: IncomingHttpHeaders, endStream: boolean): void
  data (chunk: Buffer): void
  trailers (trailers: IncomingHttpHeaders): void
  end (): void
  /** The exchange failed: `connect` when no connection could be made (else a reset / disconnect). */
  failed (connect: boolean): void
  continue (): void
}

/** The request's head as it goes to each attempt (path and authority after rewrite; headers edited, hop-by-hop gone). */
export interface UpstreamHead {
  readonly method: string
  readonly path: string
  readonly authority: string
  readonly headers: OutgoingHttpHeaders
  /** The request has a body (it is written to `ready`'s sink, then ended). */
  readonly hasBody: boolean
}

/** One attempt's exchange in flight. */
export interface UpstreamCall {
  /** The response's body flow (backpressure from the downstream). */
  pause (): void
  resume (): void
  /** Abandons the exchange (the upstream sees the request canceled: HTTP/2 RST_STREAM CANCEL, HTTP/1.1 the connection closed). Idempotent; no event follows. */
  cancel (): void
  /** Drops a response not wanted (a retry follows): its body is read and discarded so the connection can serve again. No event follows. */
  discard (): void
}

/**
 * Starts an exchange with `target` over its pool (`connections`: the backend's connection
 * limits, its own pools; omitted: none); `ready` gets the body sink once the upstream can
 * take it (only when head.hasBody).
 */
export type StartUpstream = (deps: HttpEngineDeps, target: UpstreamTarget, head: UpstreamHead, events: UpstreamEvents, ready: (sink: Writable) => void, connections?: ConnectionPolicy | null) => UpstreamCall
