import type { Logger } from '../telemetry/logger'

// The shared life of a long-running Ferry process (agent, controller): run until
// SIGTERM or SIGINT, close the service, flush the log, then exit — forcibly after a
// grace period if live connections still hold the event loop.

const EXIT_GRACE_MS = 2000

export async function serveUntilSignal (service: { close: () => Promise<void> }, log: Logger, what: string): Promise<number> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => { resolve('SIGTERM') })
    process.once('SIGINT', () => { resolve('SIGINT') })
  })
  log.info({ signal }, 'stopping')
  let code = 0
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
