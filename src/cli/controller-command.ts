import { Controller } from '../controller/controller'
import { CONTROLLER_USAGE, parseControllerOptions } from '../controller/options'
import { createLogger } from '../telemetry/logger'

// `ferry controller ...`: parse and validate options, start the CA, run until SIGTERM or
// SIGINT, then close and exit 0. Logs are JSON on stdout.

/** After a clean close the process should exit on its own; if a handle lingers, do not hang. */
const EXIT_GRACE_MS = 2000

export async function controllerCommand (argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(CONTROLLER_USAGE)
    return 0
  }
  const options = parseControllerOptions(argv)
  const log = createLogger({ name: 'ferry-controller', level: options.logLevel })
  const controller = await Controller.start(options, { log })
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => { resolve('SIGTERM') })
    process.once('SIGINT', () => { resolve('SIGINT') })
  })
  log.info({ signal }, 'stopping')
  let code = 0
  try {
    await controller.close()
  } catch (err) {
    log.error({ err }, 'controller close failed')
    code = 1
  }
  log.flush()
  setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
  return code
}
