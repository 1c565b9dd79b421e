import type { Http2Session } from 'node:http2'
import type { Socket } from 'node:net'

// Liveness of one HTTP/2 session, on either end. Node's session timeout fires after
// `idleMs` with no stream traffic either way; then:
//   no open stream  → onIdle (the owner closes it gracefully with GOAWAY)
//   open streams    → they may just be quiet (an idle database connection): PING, and
//                     only if no PING ack arrives within pingTimeoutMs is the peer dead
//                     → onDead (the owner destroys the session; its streams reset)

export interface SessionWatch {
  readonly idleMs: number
  readonly pingTimeoutMs: number
  /** Open streams right now. */
  readonly openStreams: () => number
  readonly onIdle: () => void
  readonly onDead: (why: string) => void
}

export function watchSession (session: Http2Session, w: SessionWatch): void {
  let pinging = false
  // setTimeout's own callback would be a once-listener: the watch must outlive a timeout.
  session.setTimeout(w.idleMs)
  session.on('timeout', () => {
    if (session.destroyed || session.closed) return
    if (w.openStreams() === 0) { w.onIdle(); return }
    if (pinging) return
    pinging = true
    const timer = setTimeout(() => { w.onDead(`no PING answer within ${w.pingTimeoutMs} ms`) }, w.pingTimeoutMs)
    const sent = session.ping((err) => {
      pinging = false
      clearTimeout(timer)
      if (session.destroyed) return
      if (err !== null) { w.onDead(`PING failed: ${err.message}`); return }
      // A PING and its ack do not count as activity for Node's session timer, and a fired
      // timer is re-armed only by stream traffic: re-arm it, or a quiet stream is never
      // checked again.
      session.setTimeout(w.idleMs)
    })
    if (!sent) { pinging = false; clearTimeout(timer); session.setTimeout(w.idleMs) }
  })
}

/**
 * Graceful close with a deadline: GOAWAY, let open streams finish, then Node ends the
 * socket and waits for the peer to close its side. A peer that never reads (a
 * half-open client) would hold the socket forever, so after `graceMs` it is destroyed.
 */
export function closeSession (session: Http2Session, socket: Socket, graceMs: number): void {
  if (!session.closed && !session.destroyed) session.close()
  if (socket.destroyed) return
  const timer = setTimeout(() => { socket.destroy() }, graceMs)
  socket.once('close', () => { clearTimeout(timer) })
}
