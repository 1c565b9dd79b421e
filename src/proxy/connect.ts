import type { Socket } from 'node:net'
import type { SocketAddr } from '../telemetry/connection-record'
import { trace } from '../telemetry/trace'
import { type Conn, errorCodeOf } from './conn'

// Connect stage: open the upstream socket through a Connector and wait, at most
// timeoutMs, for it to connect. The Connector decides *where* the socket is created:
// the agent's creates it inside the source pod's netns (outbound, direct) or the
// destination pod's netns (inbound, same-node, and streams from the tunnel) via the
// addon; tests connect plainly on loopback. The source may give up meanwhile: its socket
// closes, or (tunnel) the stream's `signal` aborts.
// Failures are outcomes, never exceptions.

const TRACE = trace('proxy')

export interface ConnectRequest {
  readonly host: string
  readonly port: number
  readonly family: 4 | 6
  readonly timeoutMs: number
}

/** Creates a connecting socket. May throw (e.g. the pod's netns is gone): that is a connect_error. */
export type Connector = (req: ConnectRequest) => Socket

export type ConnectFailure = 'connect_error' | 'connect_timeout' | 'reset'

export function connectUpstream (
  conn: Conn,
  target: SocketAddr,
  connector: Connector,
  timeoutMs: number,
  onConnected: (upstream: Socket) => void,
  onFailed: (result: ConnectFailure, errorCode: string) => void,
  signal?: AbortSignal
): void {
  let upstream: Socket
  try {
    upstream = connector({ host: target.address, port: target.port, family: target.family, timeoutMs })
  } catch (err) {
    onFailed('connect_error', errorCodeOf(err))
    return
  }
  // The relay forwards each FIN on its own; a socket that ended itself on the peer's FIN
  // would cut the other direction short. Whoever created it, make it half-open capable.
  upstream.allowHalfOpen = true
  conn.upstream = upstream
  const timer = setTimeout(onTimeout, timeoutMs)
  const unwatch = watchSource(conn, signal, onDownstreamClose)

  function settle (): void {
    clearTimeout(timer)
    upstream.off('connect', onConnect)
    upstream.off('error', onError)
    unwatch()
  }
  function onConnect (): void {
    settle()
    if (TRACE.on) TRACE('upstream connected', { to: `${target.address}:${target.port}`, local: upstream.localPort })
    onConnected(upstream)
  }
  function onError (err: Error): void {
    settle()
    upstream.destroy()
    // A connector may enforce its own deadline, and the kernel gives up on SYNs with
    // ETIMEDOUT: both are timeouts, not refusals.
    const code = errorCodeOf(err)
    onFailed(code === 'ETIMEDOUT' ? 'connect_timeout' : 'connect_error', code)
  }
  function onTimeout (): void {
    settle()
    upstream.destroy()
    onFailed('connect_timeout', 'ETIMEDOUT')
  }
  function onDownstreamClose (): void {
    // The application gave up (or reset) while we were still connecting.
    settle()
    upstream.destroy()
    onFailed('reset', conn.errorCode ?? 'ECONNABORTED')
  }

  upstream.once('connect', onConnect)
  upstream.once('error', onError)
}

/** Calls onGone once if the source goes away (its socket closes, `signal` aborts); returns a function that stops watching. */
export function watchSource (conn: Conn, signal: AbortSignal | undefined, onGone: () => void): () => void {
  const down = conn.downstream
  down?.once('close', onGone)
  signal?.addEventListener('abort', onGone, { once: true })
  return () => {
    down?.off('close', onGone)
    signal?.removeEventListener('abort', onGone)
  }
}
