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
/** Root loggers made by createLogger: their output and the pid their lines carry. */
const roots = new WeakMap<object, { readonly write: (line: string) => void, readonly pid: number }>()

export function createLogger (opts: { name: string, level?: string, destination?: string | number, maxPendingBytes?: number } = { name: 'ferry' }): Logger {
  const dest = opts.destination === undefined ? 1 : opts.destination
  const destination = pino.destination({ dest, sync: false, mkdir: true, minLength: LOG_BATCH_CHARS, periodicFlush: LOG_FLUSH_MS, maxLength: opts.maxPendingBytes ?? LOG_MAX_PENDING_BYTES })
  const dropped = { count: 0 }
  destination.on('drop', () => { dropped.count++ })
  const log = pino({ name: opts.name, level: opts.level ?? ENV.logLevel, base: { pid: process.pid } }, destination)
  drops.set(log, dropped)
  roots.set(log, { write: (line) => { destination.write(line) }, pid: process.pid })
  return log
}

/** pino's number for level info (its default levels). */
const INFO_LEVEL = 30
/** How far up a child logger's prototype chain its root is looked for. */
const MAX_CHILD_DEPTH = 16

/**
 * Writes info lines whose fields the caller has already serialized, for the hottest
 * lines (one per proxied request): the line pino would write for `log.info(fields, msg)`
 * — level, time (epoch ms), pid, the logger's bindings, the fields in order, msg — put
 * together by hand, through the same output (batched, bounded, drops counted). pino's
 * own serialization (every key checked, nested objects through its safe stringify)
 * costs about as much again as the write. `fields` is `"key":value,…` (JSON, no braces,
 * non-empty). Null when `log` is not a createLogger logger or its child (pino makes a
 * child with its parent as prototype): the caller then logs through pino.
 */
export function infoLineWriter (log: Logger, msg: string): ((fields: string) => void) | null {
  let root: object | null = log
  for (let i = 0; i < MAX_CHILD_DEPTH && root !== null && !roots.has(root); i++) root = Object.getPrototypeOf(root) as object | null
  const out = root === null ? undefined : roots.get(root)
  if (out === undefined) return null
  const bindings = JSON.stringify(log.bindings()).slice(1, -1)
  const head = `,"pid":${out.pid}${bindings === '' ? '' : ',' + bindings},`
  const tail = `,"msg":${JSON.stringify(msg)}}\n`
  return (fields) => { out.write(`{"level":${INFO_LEVEL},"time":${Date.now()}${head}${fields}${tail}`) }
}

/** Lines `log` (a root logger from createLogger) dropped because its output did not keep up; 0 for other loggers. */
export function droppedLogLines (log: Logger): number {
  return drops.get(log)?.count ?? 0
}
