import { Socket } from 'node:net'
import type { RelayEnd } from '../proxy/relay'
import type { HttpVersion } from './context'
import { ReplayEnd } from './replay-end'

// A declared HTTP port's connection (protocol http1 or http2, not gRPC) accepts either
// version from the client, as Envoy's automatic codec does: the first bytes decide —
// the HTTP/2 client preface is HTTP/2 (prior knowledge), anything else is handed to the
// HTTP/1.1 parser (which refuses what is not HTTP/1.1). The upstream still speaks the
// declared version (engine.ts serveDeclared translates). Unlike detection (sniff.ts) no
// upstream connection is made first and a connection is never relayed as L4.
// The bytes read are put back with unshift, the end left paused: Node's HTTP/1.1 server
// reads a connection's buffered bytes first once resumed, and its HTTP/2 session drains a
// socket's buffered bytes itself when it takes the socket (resuming the socket then would
// hand them over twice: `resume` false). An HTTP/2 client on an end that is not a socket
// (a tunnel stream) gets a ReplayEnd, as detection does.
// No verdict within `timeoutMs`: the connection is destroyed and `done` is given null
// (the caller counts a header_timeout). Closed or ended before a verdict: destroyed,
// `done` never called (the caller accounts from the end's own 'close').

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export function peekVersion (end: RelayEnd, timeoutMs: number, done: (r: { readonly version: HttpVersion, readonly end: RelayEnd, readonly resume: boolean } | null) => void): void {
  let buffered: Buffer | null = null
  const timer = setTimeout(() => { settle(); end.destroy(); done(null) }, timeoutMs)
  function settle (): void {
    clearTimeout(timer)
    end.off('data', onData)
    end.off('close', onClose)
    end.off('end', onEnd)
    end.pause()
  }
  function onData (chunk: Buffer): void {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
    const n = Math.min(buffered.length, H2_PREFACE.length)
    const h2 = buffered.compare(H2_PREFACE, 0, n, 0, n) === 0
    if (h2 && buffered.length < H2_PREFACE.length) return
    settle()
    if (h2 && !(end instanceof Socket)) {
      done({ version: 'http2', end: new ReplayEnd(end, buffered), resume: true })
      return
    }
    end.unshift(buffered)
    done({ version: h2 ? 'http2' : 'http1', end, resume: !h2 })
  }
  // Closed before its first bytes: nothing to serve (the caller accounts from its own 'close').
  function onClose (): void { clearTimeout(timer) }
  // Ended before a verdict: no request can follow.
  function onEnd (): void { settle(); end.destroy() }
  end.on('error', ignore)
  end.once('close', onClose)
  end.once('end', onEnd)
  end.on('data', onData)
  end.resume()
}

function ignore (): void {}
