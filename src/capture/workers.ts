import { ferryError } from '../errors'
import { MAX_WORKERS } from './map-layout'

// Data-path workers as Ferry's eBPF programs see them (bpf/ferry_workers.h): each has an
// id in [0, MAX_WORKERS) and its own listeners; the live set names those that may take
// new connections. Checked here once for capture and for the tunnel's SynFilter.

/** Throws FERRY_ERR_INVALID_ARG unless `w` is a worker id. */
export function checkWorkerId (w: unknown, what = 'worker id'): asserts w is number {
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w >= MAX_WORKERS) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `${what} must be an integer from 0 to ${MAX_WORKERS - 1}, got ${String(w)}`)
  }
}

/** The live set as given, checked, without duplicates, in ascending order (may be empty). */
export function checkLiveWorkers (ids: unknown): number[] {
  if (!Array.isArray(ids)) throw ferryError('FERRY_ERR_INVALID_ARG', 'live workers must be an array of worker ids')
  for (const w of ids) checkWorkerId(w, 'a live worker')
  return [...new Set(ids as number[])].sort((a, b) => a - b)
}
