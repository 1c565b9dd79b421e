import type { Logger } from '../telemetry/logger'

// The shared life of a long-running Ferry process (agent, controller): run until
// SIGTERM or SIGINT, drain the service if it can (the agent lets live connections
// finish, bounded by its own grace period; a second signal cuts the drain short), close
// it, flush the log, then exit — forcibly after a grace period if live connections
// still hold the event loop.

const EXIT_GRACE_MS = 2000

export interface Service {
  close: () => Promise<void>
  /** Stop taking new work and let the current work finish (bounded by the service). */
  drain?: () => Promise<unknown>
}

export async function serveUntilSignal (service: Service, log: Logger, what: string): Promise<number> {
  const signal = await nextSignal()
  log.info({ signal }, 'stopping')
  let code = 0
  if (service.drain !== undefined) {
    try {
      const again = nextSignal()
      const cut = await Promise.race([service.drain().then(() => null), again])
      if (cut !== null) log.warn({ signal: cut }, 'second signal: draining cut short')
    } catch (err) {
      log.error({ err }, `${what} drain failed`)
    }
  }
  try {
    await service.close()
  } catch (err) {
    log.error({ err }, `${what} close failed`)
    code = 1
  }
  // pino writes asynchronously: make sure the last lines are out before exiting.
  await new Promise<void>((resolve) => { log.flush(() => { resolve() }) })
  setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
  return code
}

async function nextSignal (): Promise<NodeJS.Signals> {
  return await new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on)
      process.off('SIGINT', on)
      resolve(signal)
    }
    process.on('SIGTERM', on)
    process.on('SIGINT', on)
  })
}
