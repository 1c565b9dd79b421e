import { Socket } from 'node:net'
import type { RelayEnd } from '../proxy/relay'
import type { HttpVersion } from './context'
import { ReplayEnd } from './replay-end'

// Protocol detection for an undeclared port (L7 protocol `detect`). The proxy has
// already connected upstream, choosing the endpoint as L4 does, so a server-first
// protocol's greeting flows at once: nothing here waits on a timer. Whichever side
// speaks first decides:
//   the server          L4 (server_first): a server-first protocol (MySQL, SMTP, a banner)
//   the client, with an HTTP/1.x request line        L7 HTTP/1.1
//   the client, with the HTTP/2 client preface       L7 HTTP/2
//   the client, with anything else (or it closes)    L4 (not_http)
// The bytes read meanwhile are put back (unshift) on the end they came from, untouched,
// and both ends are left paused with no listener of ours: the caller relays them (L4)
// or hands them to the HTTP engine (L7: `end`, which replays the client's bytes; the
// upstream connection pooled first).
// One exception to "the server first": an HTTP/2 server sends its SETTINGS frame as soon
// as a connection opens, before any request. Server bytes that begin exactly like a
// SETTINGS frame on stream 0 are held (they are no greeting a client waits for) and the
// client decides; they are replayed to whichever side takes the connection.
// If either end closes before the verdict, the other is closed too and `done` is never
// called (the caller accounts the connection from its own end's 'close').
// A request line is at most `maxLine` bytes (the header limit): a longer first line is
// not HTTP as far as detection goes.

export type SniffResult =
  | {
    readonly kind: 'http'
    readonly version: HttpVersion
    /** `down` with the bytes read put back in front (replay-end.ts): hand this to the engine. */
    readonly end?: RelayEnd
    /** `up` likewise, when the server's SETTINGS were read: the first pooled upstream connection. */
    readonly up?: RelayEnd
  }
  | {
    readonly kind: 'l4'
    readonly reason: 'server_first' | 'not_http'
    /**
     * The client ended its side before a verdict: the bytes it sent (maybe none), which
     * could not be put back before its end. Nothing was written upstream: whoever takes
     * the connection passes them and the end on (passClientEnd) once it may, after the
     * connection is authorized.
     */
    readonly ended?: Buffer
  }

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const HTTP1: SniffResult = Object.freeze({ kind: 'http', version: 'http1' })
const HTTP2: SniffResult = Object.freeze({ kind: 'http', version: 'http2' })
const SERVER_FIRST: SniffResult = Object.freeze({ kind: 'l4', reason: 'server_first' })
const NOT_HTTP: SniffResult = Object.freeze({ kind: 'l4', reason: 'not_http' })
/** "GET /x HTTP/1.1" — a token, a target, the version; tolerant of a bare LF. */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^\s]+ HTTP\/1\.[01]\r?$/

/**
 * Decides what `down` (the client's end) speaks, `up` being its upstream connection.
 * Verdict 'more': the bytes so far are a prefix of something HTTP; null: they cannot be.
 */
export function classify (buf: Buffer, maxLine: number): SniffResult | 'more' {
  const n = Math.min(buf.length, H2_PREFACE.length)
  if (buf.compare(H2_PREFACE, 0, n, 0, n) === 0) return buf.length >= H2_PREFACE.length ? HTTP2 : 'more'
  const lf = buf.indexOf(10)
  if (lf < 0) {
    if (buf.length > maxLine) return NOT_HTTP
    // A method token so far, or a token and a space and more: keep reading.
    return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*( [^\s]*( H?T?T?P?\/?1?\.?[01]?\r?)?)?$/.test(buf.toString('latin1')) ? 'more' : NOT_HTTP
  }
  return REQUEST_LINE.test(buf.toString('latin1', 0, lf)) ? HTTP1 : NOT_HTTP
}

export function sniff (down: RelayEnd, up: RelayEnd, maxLine: number, done: (r: SniffResult) => void): void {
  let buffered: Buffer | null = null
  let held: Buffer | null = null
  let settled = false

  function settle (r: SniffResult, upChunk: Buffer | null): void {
    if (settled) return
    settled = true
    down.off('data', onDown)
    down.off('end', onDownEnd)
    up.off('data', onUp)
    up.off('end', onUpEnd)
    down.off('close', onDownClose)
    up.off('close', onUpClose)
    down.pause()
    up.pause()
    if (r.kind === 'http') {
      // The wrappers below are not sockets: the engine cannot turn Nagle off through them.
      noDelay(down)
      noDelay(up)
      const replayUp = held === null ? undefined : new ReplayEnd(up, held)
      done({ kind: 'http', version: r.version, end: new ReplayEnd(down, buffered ?? Buffer.alloc(0)), ...(replayUp === undefined ? {} : { up: replayUp }) })
      return
    }
    if (upChunk !== null) up.unshift(upChunk)
    if (buffered !== null) down.unshift(buffered)
    done(r)
  }
  function onDown (chunk: Buffer): void {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
    const r = classify(buffered, maxLine)
    if (r === 'more') return
    // An HTTP/2 server's SETTINGS were held: a client that is not HTTP/2 gets them now.
    if (held !== null && !(r.kind === 'http' && r.version === 'http2')) {
      const h = held
      held = null
      settle(r.kind === 'http' ? NOT_HTTP : r, h)
      return
    }
    settle(r, null)
  }
  function onUp (chunk: Buffer): void {
    if (held !== null) { held = Buffer.concat([held, chunk]); return }
    if (buffered === null && isH2Settings(chunk)) { held = chunk; return }
    settle(SERVER_FIRST, chunk)
  }
  // An end read here cannot be put back: the bytes before it and the end go to the
  // caller (`ended`), who passes them on once the connection may reach upstream — never
  // before its authorization.
  function onDownEnd (): void {
    if (held !== null) { up.unshift(held); held = null }
    const bytes = buffered ?? Buffer.alloc(0)
    buffered = null
    settle({ kind: 'l4', reason: 'not_http', ended: bytes }, null)
  }
  function onUpEnd (): void {
    if (held !== null) { down.write(held); held = null }
    down.end()
    settle(SERVER_FIRST, null)
  }

  // An error while deciding (a reset) must not go unhandled; whoever takes the ends
  // next listens for errors itself, and the ends' 'close' still tells of the reset.
  down.on('error', ignore)
  up.on('error', ignore)
  // Either end closing (a reset) before the verdict takes the other with it; no verdict.
  function onDownClose (): void {
    if (settled) return
    settled = true
    up.destroy()
  }
  function onUpClose (): void {
    if (settled) return
    settled = true
    if (!down.destroyed) down.resetAndDestroy()
  }
  down.once('close', onDownClose)
  up.once('close', onUpClose)
  down.on('data', onDown)
  down.once('end', onDownEnd)
  up.on('data', onUp)
  up.once('end', onUpEnd)
  down.resume()
  up.resume()
}

/**
 * Before relaying an L4 verdict: when the client ended its side during detection, writes
 * the bytes it sent and the end to `up` (the relay will not see that end again).
 */
export function passClientEnd (r: SniffResult, up: RelayEnd): void {
  if (r.kind !== 'l4' || r.ended === undefined) return
  if (r.ended.length > 0) up.write(r.ended)
  up.end()
}

/** The first 9 bytes of a SETTINGS frame on stream 0 (RFC 9113 §6.5): length a multiple of 6, type 4, no flags. */
function isH2Settings (b: Buffer): boolean {
  if (b.length < 9) return false
  const length = (b[0] << 16) | (b[1] << 8) | b[2]
  return length % 6 === 0 && length <= 16384 && b[3] === 0x04 && b[4] === 0 && b.readUInt32BE(5) === 0
}

function ignore (): void {}

function noDelay (end: RelayEnd): void {
  if (end instanceof Socket) end.setNoDelay(true)
}
