import { constants, type Http2Stream } from 'node:http2'
import { Duplex } from 'node:stream'
import { ferryError } from '../errors'
import type { StreamLease } from './session-buffers'

// One tunnelled TCP connection, as the relay sees it: a Duplex that behaves like a
// half-open-capable socket over an HTTP/2 CONNECT stream (RFC 9113 §8.5).
//
//   data       both ways; backpressure is HTTP/2 flow control: when the consumer stops
//              reading, the stream is paused, Node stops acknowledging, the window closes
//   half-close end() sends END_STREAM; a received END_STREAM ends the readable side
//   reset      destroy() or resetAndDestroy() before both sides ended sends RST_STREAM
//              CONNECT_ERROR (the RFC's mapping of a TCP RST); a RST_STREAM received, or
//              the session dying, destroys this stream with an ECONNRESET error carrying
//              the HTTP/2 code in `rstCode`, so the relay resets the TCP side
//   buffers    one piece of data each way at most (high-water mark 1): a consumer that
//              stops reading leaves one received piece here and the rest in the HTTP/2
//              stream, its window closing; a write that has to wait returns false, so the
//              relay pauses its source at once. A side is backed up while the consumer
//              has paused us or not started reading (receive), or while HTTP/2 has not
//              yet sent what was written (send); the budget leases its buffers if that
//              lasts (buffer-budget.ts), and resets a stream it has no room for (overBudget);
//              what arrives is reported (received), so a stream held back by its window
//              has the window grow (session-buffers.ts)
//
// Handlers are bound once per stream; nothing is allocated per chunk.

const { NGHTTP2_NO_ERROR, NGHTTP2_CONNECT_ERROR } = constants
const EMPTY = Buffer.alloc(0)

export interface TunnelEnds {
  /** The verified identity at the other end of the tunnel. */
  readonly peerSpiffeId: string
  /** Serial number (hex) of the certificate the peer presented: which of its SVIDs. */
  readonly peerCertSerial: string
  /** The identity this end presented. */
  readonly localSpiffeId: string
  /** The CONNECT target, "ip:port" / "[ip6]:port". */
  readonly authority: string
  /** The peer node's address and port (the TLS connection's). */
  readonly remoteAddress: string
  readonly remotePort: number
}

export class TunnelStream extends Duplex implements TunnelEnds {
  readonly peerSpiffeId: string
  readonly peerCertSerial: string
  readonly localSpiffeId: string
  readonly authority: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** Payload bytes received from / sent to the tunnel. */
  bytesRead = 0
  bytesWritten = 0
  /** The HTTP/2 code of the RST_STREAM that ended this stream (either way), or null. */
  rstCode: number | null = null
  private pendingWrite: ((err?: Error | null) => void) | null = null
  /** Bytes of the write HTTP/2 has taken and not yet sent (our writableLength counts them too). */
  private handedToH2 = 0
  private pendingFinal: ((err?: Error | null) => void) | null = null
  private finalRequested = false

  constructor (private readonly h2: Http2Stream, ends: TunnelEnds, private readonly lease: StreamLease | null = null) {
    super({ allowHalfOpen: true, highWaterMark: 1 })
    this.peerSpiffeId = ends.peerSpiffeId
    this.peerCertSerial = ends.peerCertSerial
    this.localSpiffeId = ends.localSpiffeId
    this.authority = ends.authority
    this.remoteAddress = ends.remoteAddress
    this.remotePort = ends.remotePort
    h2.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length
      this.lease?.received(chunk.length)
      if (this.push(chunk)) return
      h2.pause()
      // Not read (yet): buffered here, and the window closes.
      this.lease?.stall('receive')
    })
    if (lease !== null) {
      lease.attach(this)
      this.on('pause', () => { lease.stall('receive') })
      this.on('resume', () => { lease.unstall('receive') })
    }
    // Node ends the readable side of a stream that is reset, too, and tells of the reset
    // only afterwards (in the same read): a FIN is passed on only once it is clearly not
    // the start of a reset, or the relay would send a FIN and then a RST.
    h2.on('end', () => { setImmediate(this.endIfClean) })
    h2.on('drain', () => {
      const cb = this.pendingWrite
      this.pendingWrite = null
      this.handedToH2 = 0
      if (cb !== null) cb()
      this.h2Written()
    })
    h2.on('finish', () => {
      const cb = this.pendingFinal
      this.pendingFinal = null
      if (cb !== null) cb()
    })
    // The error is an RST_STREAM or the session's end; 'close' follows and decides.
    h2.on('error', () => {})
    h2.on('close', () => {
      if (this.destroyed) return
      const code = h2.rstCode ?? NGHTTP2_NO_ERROR
      // Closed cleanly: END_STREAM both ways. Node may close the stream before it emits
      // 'finish' for our END_STREAM, so "we asked for it" counts as sent.
      if (code === NGHTTP2_NO_ERROR && h2.readableEnded && (this.finalRequested || h2.writableFinished)) {
        const cb = this.pendingFinal
        this.pendingFinal = null
        if (cb !== null) cb()
        return
      }
      this.rstCode = code
      this.destroy(resetError(code))
    })
  }

  /** A write left HTTP/2: once nothing is left there or waiting here, the send side has drained. */
  private readonly h2Written = (): void => {
    if (this.h2.writableLength === 0 && this.pendingWrite === null) this.lease?.unstall('send')
  }

  private readonly endIfClean = (): void => {
    if (this.destroyed) return
    const code = this.h2.rstCode
    if (code === undefined || code === NGHTTP2_NO_ERROR) this.push(null)
  }

  /**
   * The HTTP/2 receive windows this end grants the peer now, in bytes: this stream's
   * and its session's (what is left of each until the next WINDOW_UPDATE). For
   * diagnostics, and for the test that the announced windows are the ones in effect.
   */
  receiveWindows (): { stream: number, session: number } {
    const stream = this.h2.state.localWindowSize ?? 0
    const session = this.h2.session?.state.localWindowSize ?? 0
    return { stream, session }
  }

  /** Aborts: RST_STREAM CONNECT_ERROR to the peer (as a TCP RST would), then destroy. */
  resetAndDestroy (): this {
    this.abortH2()
    return this.destroy()
  }

  /** The node's buffer budget has no room for this stream's backed-up buffers: reset, with FERRY_ERR_TUNNEL_BUSY for the relay. */
  overBudget (): void {
    if (this.destroyed) return
    this.abortH2()
    this.destroy(ferryError('FERRY_ERR_TUNNEL_BUSY', `tunnel stream to ${this.authority} reset: the node's tunnel buffer budget has no room for its backed-up buffers`))
  }

  override _read (): void {
    if (this.h2.isPaused()) this.h2.resume()
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytesWritten += chunk.length
    if (this.lease !== null) {
      // Until HTTP/2 has sent it, the chunk is held here, and while the writer waits, its
      // source holds what it read too (the lease covers both; see h2Written).
      this.lease.stall('send')
      if (this.destroyed) { cb(); return }
    }
    if (this.h2.write(chunk, this.h2Written)) cb()
    else {
      this.pendingWrite = cb
      this.handedToH2 = chunk.length
    }
  }

  /** Bytes this stream's own buffers hold (the budget's count): a write HTTP/2 has taken is HTTP/2's, not counted twice. */
  get heldLength (): number {
    return this.readableLength + this.writableLength - this.handedToH2
  }

  override _final (cb: (err?: Error | null) => void): void {
    this.finalRequested = true
    this.pendingFinal = cb
    this.h2.end()
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    this.lease?.unstall('receive')
    this.lease?.unstall('send')
    // Both END_STREAMs seen: the stream closes by itself. Anything else is an abort.
    if (!(this.h2.readableEnded && (this.finalRequested || this.h2.writableFinished))) this.abortH2()
    const pending = this.pendingWrite
    this.pendingWrite = this.pendingFinal = null
    this.handedToH2 = 0
    if (pending !== null) pending(err)
    cb(err)
  }

  private abortH2 (): void {
    if (this.h2.destroyed || this.h2.closed) return
    if (this.rstCode === null) this.rstCode = NGHTTP2_CONNECT_ERROR
    // Node's close(code) ends a writable side still open first: an empty DATA frame with
    // END_STREAM goes out before the RST_STREAM, and a peer that reads the two apart (they
    // are sent apart while DATA is queued) passes a FIN on before the reset — a cut
    // stream that looks complete. With a write in flight Node leaves the end to it and
    // sends the RST_STREAM at once; the stream then closes, and the write never ends it.
    if (!this.h2.writableEnded) this.h2.write(EMPTY)
    this.h2.close(NGHTTP2_CONNECT_ERROR)
  }
}

/** RFC 9113 §7 error codes, by number. */
const CODE_NAMES = Object.freeze(['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT',
  'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'])

/** The HTTP/2 error code's name ("CONNECT_ERROR"), or its number. */
export function h2CodeName (code: number): string {
  return CODE_NAMES[code] ?? String(code)
}

/** What a received reset looks like to the relay: ECONNRESET, with the HTTP/2 code kept. */
function resetError (code: number): Error & { code: string, rstCode: number } {
  return Object.assign(new Error(`tunnel stream reset (HTTP/2 ${h2CodeName(code)})`), { code: 'ECONNRESET', rstCode: code })
}
