import pino from 'pino'
import { ENV } from '../config/env'

// One root logger per process; components take child loggers that bind their
// context once (pino children are cheap), so the data path never formats strings
// for a disabled level.
export type Logger = pino.Logger

export function createLogger (opts: { name: string, level?: string, destination?: string | number } = { name: 'ferry' }): Logger {
  const dest = opts.destination === undefined ? 1 : opts.destination
  return pino({ name: opts.name, level: opts.level ?? ENV.logLevel, base: { pid: process.pid } },
    pino.destination({ dest, sync: false, mkdir: true }))
}
