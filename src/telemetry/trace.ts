import { ENV } from '../config/env'

// Per-module tracing in the style of grpc-js: FERRY_TRACE="proxy,discovery" (or "all")
// switches channels on at start-up. When a channel is off its tracer is a shared no-op
// whose `on` is false, and call sites guard with `if (TRACE.on)` so that not even the
// fields object is built: tracing costs one property read when off.

export interface Trace {
  /** True when this channel is switched on; guard calls with it. */
  readonly on: boolean
  (msg: string, fields?: Record<string, unknown>): void
}

export type TraceSink = (line: string) => void

const OFF: Trace = Object.freeze(Object.assign((_msg: string, _fields?: Record<string, unknown>): void => {}, { on: false as const }))

/** Parses a FERRY_TRACE value into the set of enabled channels ("all" or "*" enables every one). */
export function parseTraceSetting (setting: string): ReadonlySet<string> {
  return new Set(setting.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
}

/** A tracer for `channel` given an explicit setting and sink; `trace()` is the usual entry point. */
export function createTrace (channel: string, enabled: ReadonlySet<string>, sink: TraceSink): Trace {
  if (!enabled.has(channel) && !enabled.has('all') && !enabled.has('*')) return OFF
  const fn = (msg: string, fields?: Record<string, unknown>): void => {
    sink(JSON.stringify({ time: Date.now(), trace: channel, msg, ...fields }) + '\n')
  }
  return Object.freeze(Object.assign(fn, { on: true as const }))
}

const ENABLED = parseTraceSetting(ENV.trace)
const STDERR: TraceSink = (line) => { process.stderr.write(line) }

/** The tracer of a module: `const TRACE = trace('proxy')`, then `if (TRACE.on) TRACE('msg', {...})`. */
export function trace (channel: string): Trace {
  return createTrace(channel, ENABLED, STDERR)
}
