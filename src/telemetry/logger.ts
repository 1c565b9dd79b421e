import pino from 'pino'
import { ENV } from '../config/env'

// One root logger per process; components take child loggers that bind their
// context once (pino children are cheap), so the data path never formats strings
// for a disabled level.
//
// Lines are batched before they are written (as Envoy does with its access logs): every
// connection ends in an access line, and one write per line cost a trip through libuv's
// thread pool per connection (~40–90 µs of CPU, benchmarks/README.md). pino's destination
// (sonic-boom) holds lines until LOG_BATCH_CHARS are pending or LOG_FLUSH_MS have passed,
// in order; pino writes what is pending synchronously on exit.
export type Logger = pino.Logger

/** A batch is written once it holds this many characters… */
export const LOG_BATCH_CHARS = 8 * 1024
/** …or at the latest this often. */
export const LOG_FLUSH_MS = 100

export function createLogger (opts: { name: string, level?: string, destination?: string | number } = { name: 'ferry' }): Logger {
  const dest = opts.destination === undefined ? 1 : opts.destination
  return pino({ name: opts.name, level: opts.level ?? ENV.logLevel, base: { pid: process.pid } },
    pino.destination({ dest, sync: false, mkdir: true, minLength: LOG_BATCH_CHARS, periodicFlush: LOG_FLUSH_MS }))
}
