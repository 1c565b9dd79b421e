import type { ConnectionPoolLimits } from '../routing/model'
import { MAX_WORKERS } from '../capture/map-layout'
import { HEADER_WORDS, type SharedTable } from './shared-table'
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
// the engine's upstream pools apply it, and count their connections here
// (src/http/upstream-slots.ts).
//
// Each counter has one column per worker (COLUMNS: the agent's most workers): a worker
// adds and takes only in its own column, and a limit is checked against the sum of the
// columns. A worker that fails leaves counts nobody will release; the main thread zeroes
// its column (forgetWorker) before a new worker takes its id, so a crash never lowers a
// limit for good.
//
// An acquire adds first and takes itself back when the sum is over, so concurrent workers
// can only refuse too much, never admit too much. A slot with anything counted is never
// reclaimed (BusyTest), so every release lands where its acquire did.
// A full table: no gate can be kept and everything is admitted (counted by the table).

/** Columns per counter: one per worker (src/capture/map-layout.ts MAX_WORKERS). */
export const COLUMNS = MAX_WORKERS
const REQUESTS = 0
const CONNECTIONS = COLUMNS
/** Payload words of one gate's slot. */
export const POOL_WORDS = 2 * COLUMNS

export const poolBusy = (w: Int32Array, base: number): boolean => {
  for (let i = 0; i < POOL_WORDS; i++) if (Atomics.load(w, base + i) > 0) return true
  return false
}

/** Zeroes worker `worker`'s columns in every gate (it failed: what it held is gone with it). */
export function forgetPoolWorker (table: SharedTable, worker: number): void {
  const col = worker % COLUMNS
  for (let s = 0; s < table.slots; s++) {
    const base = s * table.slotWords + HEADER_WORDS
    Atomics.store(table.words, base + REQUESTS + col, 0)
    Atomics.store(table.words, base + CONNECTIONS + col, 0)
  }
}

/** A release that counts once however often it is called. */
export type Release = () => void

export class SharedPoolGate implements PoolGate {
  private readonly requestLimit: number
  private readonly connectionLimit: number
  private readonly column: number

  /** `worker`: the calling worker's id (its column). */
  constructor (private readonly table: SharedTable, private readonly key: string, limits: ConnectionPoolLimits, private readonly now: () => number, worker = 0) {
    this.column = worker % COLUMNS
    const pendingBound = limits.maxConnections === null || limits.maxPendingRequests === null ? Infinity : limits.maxConnections + limits.maxPendingRequests
    this.requestLimit = Math.min(limits.maxRequests ?? Infinity, pendingBound)
    this.connectionLimit = limits.maxConnections ?? Infinity
  }

  acquireRequest (): boolean { return this.acquire(REQUESTS, this.requestLimit) }
  releaseRequest (): void { this.release(REQUESTS) }
  acquireConnection (force = false): boolean { return this.acquire(CONNECTIONS, force ? Infinity : this.connectionLimit) }
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
    return { requests: sum(this.table.words, base + REQUESTS), connections: sum(this.table.words, base + CONNECTIONS) }
  }

  private acquire (field: number, limit: number): boolean {
    const base = this.table.find(this.key, this.now())
    if (base < 0) return true
    const w = this.table.words
    const own = base + field + this.column
    Atomics.add(w, own, 1)
    if (sum(w, base + field) <= limit) return true
    Atomics.sub(w, own, 1)
    return false
  }

  private release (field: number): void {
    const base = this.table.find(this.key, this.now())
    if (base < 0) return
    const w = this.table.words
    const own = base + field + this.column
    // Never below zero: a stray release (a bug, or after its worker's column was zeroed) must not raise the limit for everyone.
    if (Atomics.sub(w, own, 1) <= 0) Atomics.add(w, own, 1)
  }
}

function sum (w: Int32Array, first: number): number {
  let n = 0
  for (let i = 0; i < COLUMNS; i++) n += Atomics.load(w, first + i)
  return n
}

function once (f: () => void): Release {
  let done = false
  return () => {
    if (done) return
    done = true
    f()
  }
}
