import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { errorCodeOf } from './conn'

// Relay stage: copy bytes both ways until both directions are done.
//   backpressure  a side that cannot take more pauses the other side's reads until 'drain'
//   half-close    a FIN from one side is passed on (end()) while the other direction keeps
//                 flowing; both sockets must be allowHalfOpen
//   reset         an error on one side (ECONNRESET, EPIPE, ...) or an abrupt close resets
//                 the other side (RST via resetAndDestroy), never a polite FIN
//   no delay      TCP ends get TCP_NODELAY: a relay forwards each chunk as it arrives, and
//                 Nagle would hold the second small write of a response (headers, then
//                 body) until the app's delayed ACK, ~40 ms (benchmarks/README.md)
// Handlers are bound once per connection; nothing is allocated per chunk. `done` runs
// once, after both sockets have closed, with the first error code seen (null if clean).
//
// Either end may be a TCP socket or a tunnel stream (src/tunnel's TunnelStream: a Duplex
// over an HTTP/2 CONNECT stream, whose end() is END_STREAM and whose resetAndDestroy()
// is RST_STREAM CONNECT_ERROR, as RFC 9113 maps a TCP RST).

/** What the relay needs of an end: a half-close capable Duplex that can be reset and counts its bytes. */
export interface RelayEnd extends Duplex {
  readonly bytesRead: number
  readonly bytesWritten: number
  resetAndDestroy (): this
}

export type RelayDone = (errorCode: string | null) => void

export function relay (a: RelayEnd, b: RelayEnd, done: RelayDone): void {
  let errorCode: string | null = null
  let closed = 0

  function pipe (from: RelayEnd, to: RelayEnd): void {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause()
    })
    to.on('drain', () => { from.resume() })
    from.on('end', () => { to.end() })
    from.on('error', (err) => {
      if (errorCode === null) errorCode = errorCodeOf(err)
      reset(to)
    })
    from.on('close', () => {
      // A clean close has seen both FINs; anything else (destroyed locally, error) aborts the other side.
      if (!(from.readableEnded && from.writableFinished)) {
        if (errorCode === null) errorCode = 'ECONNRESET'
        reset(to)
      }
      if (++closed === 2) done(errorCode)
    })
  }

  noDelay(a)
  noDelay(b)
  pipe(a, b)
  pipe(b, a)
  a.resume()
  b.resume()
}

function noDelay (s: RelayEnd): void {
  if (s instanceof Socket) s.setNoDelay(true)
}

function reset (s: RelayEnd): void {
  if (s.destroyed) return
  // A socket's resetAndDestroy needs a live handle; a socket without one (`pending` and
  // not connecting: never connected) can only be destroyed.
  if (s instanceof Socket && s.pending && !s.connecting) s.destroy()
  else s.resetAndDestroy()
}
