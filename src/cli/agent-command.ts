import { Agent } from '../agent/agent'
import { AGENT_USAGE, parseAgentOptions } from '../agent/options'
import { loadNativePlatform } from '../agent/platform'
import { createLogger } from '../telemetry/logger'

// `ferry agent ...`: parse and validate options, start the agent, run until SIGTERM or
// SIGINT, then close everything (capture pins stay) and exit 0. Logs are JSON on stdout.

/** After a clean close the process should exit on its own; if a handle lingers, do not hang. */
const EXIT_GRACE_MS = 2000

export async function agentCommand (argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(AGENT_USAGE)
    return 0
  }
  const options = parseAgentOptions(argv)
  const log = createLogger({ name: 'ferry-agent', level: options.logLevel })
  const agent = await Agent.start(options, { platform: loadNativePlatform(), log })
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => { resolve('SIGTERM') })
    process.once('SIGINT', () => { resolve('SIGINT') })
  })
  log.info({ signal }, 'stopping')
  let code = 0
  try {
    await agent.close()
  } catch (err) {
    log.error({ err }, 'agent close failed')
    code = 1
  }
  // pino writes asynchronously: make sure the last lines are out before exiting.
  await new Promise<void>((resolve) => { log.flush(() => { resolve() }) })
  setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
  return code
}
