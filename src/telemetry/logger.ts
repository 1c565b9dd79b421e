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
//
// The pending lines are bounded: when the output does not keep up (a stdout pipe nobody
// reads, a stalled log collector), lines beyond LOG_MAX_PENDING_BYTES are dropped, not
// queued — sonic-boom's maxLength, which emits 'drop' for each — and counted
// (droppedLogLines(), exported by the agent as ferry_log_lines_dropped_total{reason="output_full"}).
// A write blocked on a full pipe holds one of libuv's thread-pool threads until the
// reader comes back; memory stays bounded.
export type Logger = pino.Logger

/** A batch is written once it holds this many characters… */
export const LOG_BATCH_CHARS = 8 * 1024
/** …or at the latest this often. */
export const LOG_FLUSH_MS = 100
/** At most this many bytes of lines wait for the output; more are dropped and counted. */
export const LOG_MAX_PENDING_BYTES = 4 * 1024 * 1024

const drops = new WeakMap<Logger, { count: number }>()

export function createLogger (opts: { name: string, level?: string, destination?: string | number, maxPendingBytes?: number } = { name: 'ferry' }): Logger {
  const dest = opts.destination === undefined ? 1 : opts.destination
  const destination = pino.destination({ dest, sync: false, mkdir: true, minLength: LOG_BATCH_CHARS, periodicFlush: LOG_FLUSH_MS, maxLength: opts.maxPendingBytes ?? LOG_MAX_PENDING_BYTES })
  const dropped = { count: 0 }
  destination.on('drop', () => { dropped.count++ })
  const log = pino({ name: opts.name, level: opts.level ?? ENV.logLevel, base: { pid: process.pid } }, destination)
  drops.set(log, dropped)
  return log
}

/** Lines `log` (a root logger from createLogger) dropped because its output did not keep up; 0 for other loggers. */
export function droppedLogLines (log: Logger): number {
  return drops.get(log)?.count ?? 0
}
