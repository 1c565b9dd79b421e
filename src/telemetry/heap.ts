import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// A thread's JavaScript heap, optionally right after a full garbage collection: what
// the agent's POST /debug/memory answers (src/agent/admin-server.ts), so that a churn
// run can tell memory the agent still holds from garbage not yet collected. The agent
// runs without --expose-gc; the flag is set at the first collection asked for and `gc`
// is taken from a fresh context (the flag only exposes it to contexts made after it).

export interface HeapFigures {
  /** True when a full collection ran just before the figures were read. */
  readonly collected: boolean
  readonly heapUsedBytes: number
  readonly heapTotalBytes: number
  /** Memory of C++ objects bound to JavaScript ones (Buffers, sockets' handles…). */
  readonly externalBytes: number
  /** Of externalBytes, ArrayBuffers' and SharedArrayBuffers' (Buffers included). */
  readonly arrayBuffersBytes: number
}

let collect: (() => void) | undefined

/** Runs a full, synchronous garbage collection of this thread's heap. */
export function collectGarbage (): void {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc')
    collect = runInNewContext('gc') as () => void
  }
  collect()
}

/** This thread's heap now; after a full collection when `gc`. */
export function heapFigures (gc: boolean): HeapFigures {
  if (gc) collectGarbage()
  const h = getHeapStatistics()
  const m = process.memoryUsage()
  return { collected: gc, heapUsedBytes: h.used_heap_size, heapTotalBytes: h.total_heap_size, externalBytes: h.external_memory, arrayBuffersBytes: m.arrayBuffers }
}
