import { Controller } from '../controller/controller'
import { CONTROLLER_USAGE, parseControllerOptions } from '../controller/options'
import { createLogger } from '../telemetry/logger'
import { serveUntilSignal } from './serve'

// `ferry controller ...`: parse and validate options, start the CA, run until SIGTERM or
// SIGINT, then close and exit 0. Logs are JSON on stdout.

export async function controllerCommand (argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(CONTROLLER_USAGE)
    return 0
  }
  const options = parseControllerOptions(argv)
  const log = createLogger({ name: 'ferry-controller', level: options.logLevel })
  const controller = await Controller.start(options, { log })
  return await serveUntilSignal(controller, log, 'controller')
}
