import type { ConnectionPoolLimits } from '../routing/model'
import type { SharedTable } from './shared-table'
import type { PoolGate } from './types'

// A DestinationRule's connection-pool limits for one backend, node-wide (Envoy's circuit
// breakers, which Envoy too shares across its workers): counters in one slot of a shared
// table (shared-table.ts), moved with Atomics by every worker.
//
//   requests     requests admitted and not finished: at most http2MaxRequests; and, when
//                maxConnections is set, at most maxConnections + http1MaxPendingRequests
//                (an HTTP/1.1 connection carries one request at a time: the others wait
//                for a connection, and at most http1MaxPendingRequests may wait)
//   connections  upstream connections open: at most maxConnections
//
// http.maxRequestsPerConnection is a property of each connection, not a count to share:
// the engine's upstream pools close a connection after that many requests.
//
// An acquire adds first and takes itself back when over, so concurrent workers can only
// refuse too much, never admit too much. A slot with requests or connections counted is
// never reclaimed (BusyTest), so every release lands where its acquire did.
// A full table: no gate can be kept and everything is admitted (counted by the table).

const REQUESTS = 0
const CONNECTIONS = 1
/** Payload words of one gate's slot. */
export const POOL_WORDS = 2

export const poolBusy = (w: Int32Array, base: number): boolean =>
  Atomics.load(w, base + REQUESTS) > 0 || Atomics.load(w, base + CONNECTIONS) > 0

/** A release that counts once however often it is called. */
export type Release = () => void

export class SharedPoolGate implements PoolGate {
  private readonly requestLimit: number
  private readonly connectionLimit: number

  constructor (private readonly table: SharedTable, private readonly key: string, limits: ConnectionPoolLimits, private readonly now: () => number) {
    const pendingBound = limits.maxConnections === null || limits.maxPendingRequests === null ? Infinity : limits.maxConnections + limits.maxPendingRequests
    this.requestLimit = Math.min(limits.maxRequests ?? Infinity, pendingBound)
    this.connectionLimit = limits.maxConnections ?? Infinity
  }

  acquireRequest (): boolean { return this.acquire(REQUESTS, this.requestLimit) }
  releaseRequest (): void { this.release(REQUESTS) }
  acquireConnection (): boolean { return this.acquire(CONNECTIONS, this.connectionLimit) }
  releaseConnection (): void { this.release(CONNECTIONS) }

  /** acquireRequest with its release bound to it: null when refused; the release counts once. */
  request (): Release | null {
    return this.acquireRequest() ? once(() => { this.releaseRequest() }) : null
  }

  /** acquireConnection with its release bound to it: null when refused; the release counts once. */
  connection (): Release | null {
    return this.acquireConnection() ? once(() => { this.releaseConnection() }) : null
  }

  /** Node-wide counts now (for /debug/config and tests). */
  counts (): { requests: number, connections: number } {
    const base = this.table.find(this.key, this.now())
    if (base < 0) return { requests: 0, connections: 0 }
    return { requests: Atomics.load(this.table.words, base + REQUESTS), connections: Atomics.load(this.table.words, base + CONNECTIONS) }
  }

  private acquire (field: number, limit: number): boolean {
    const base = this.table.find(this.key, this.now())
    if (base < 0) return true
    const w = this.table.words
    if (Atomics.add(w, base + field, 1) < limit) return true
    Atomics.sub(w, base + field, 1)
    return false
  }

  private release (field: number): void {
    const base = this.table.find(this.key, this.now())
    if (base < 0) return
    const w = this.table.words
    // Never below zero: a stray release (a bug) must not raise the limit for everyone.
    if (Atomics.sub(w, base + field, 1) <= 0) Atomics.add(w, base + field, 1)
  }
}

function once (f: () => void): Release {
  let done = false
  return () => {
    if (done) return
    done = true
    f()
  }
}
