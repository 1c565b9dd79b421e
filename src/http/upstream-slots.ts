import type { RelayEnd } from '../proxy/relay'
import type { PoolGate } from '../limits/types'
import type { UpstreamTarget } from './context'

// What one upstream pool (upstream-pool.ts) holds against its backend's node-wide
// connection count (tcp.maxConnections, src/limits/pool-gate.ts), and its connects
// bounded by tcp.connectTimeout.
//
// A slot is held from before a connection is dialed until it closes (or its dial fails):
// released exactly once. When the backend is at its limit a pool that holds no slot
// takes one anyway (Envoy's rule: a pool with no connection opens one, else its requests
// could wait on connections another worker or endpoint keeps idle), so node-wide the
// count may pass the limit by at most one connection per such pool; a pool that holds one
// waits. A waiter polls the gate: connections of other workers close without telling us.

/** Releases a slot; counts once however often it is called. */
export type SlotRelease = () => void

const POLL_MS = 20

export class ConnectionSlots {
  private held = 0

  constructor (private readonly gate: PoolGate | null) {}

  /** Slots held now (connections dialing or open). */
  get count (): number { return this.held }

  /** A slot under the limit (or the pool's first, see above; `force`: in any case); null: at the limit, wait. */
  take (force = false): SlotRelease | null {
    const g = this.gate
    if (g !== null && !g.acquireConnection(force || this.held === 0)) return null
    this.held++
    let done = false
    return () => {
      if (done) return
      done = true
      this.held--
      g?.releaseConnection()
    }
  }

  /** Waits for a slot; null when `abandoned()` turns true first (the pool was closed). */
  wait (abandoned: () => boolean): Promise<SlotRelease | null> {
    return new Promise((resolve) => {
      const poll = (): void => {
        if (abandoned()) { resolve(null); return }
        const slot = this.take()
        if (slot !== null) resolve(slot)
        else setTimeout(poll, POLL_MS)
      }
      poll()
    })
  }
}

/**
 * `target.dial()` bounded by `timeoutMs` (null: the dial's own bound): past it the connect
 * fails with ETIMEDOUT (a connect failure, flag UF), and a connection that still comes is
 * closed at once.
 */
export function dialWithin (target: UpstreamTarget, timeoutMs: number | null): Promise<RelayEnd> {
  if (timeoutMs === null) return target.dial()
  return new Promise((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => {
      settled = true
      reject(Object.assign(new Error(`upstream connect timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    target.dial().then((end) => {
      if (settled) { end.destroy(); return }
      settled = true
      clearTimeout(timer)
      resolve(end)
    }, (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      reject(err)
    })
  })
}
