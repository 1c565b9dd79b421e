import { Agent } from '../agent/agent'
import { AGENT_USAGE, parseAgentOptions } from '../agent/options'
import { loadNativePlatform } from '../agent/platform'
import { createLogger } from '../telemetry/logger'
import { serveUntilSignal } from './serve'

// `ferry agent ...`: parse and validate options (--node may come from $NODE_NAME, the
// DaemonSet's downward API), start the agent, run until SIGTERM or SIGINT, drain (not
// ready, no new connections, live ones get --drain-grace), then close everything
// (capture pins stay) and exit 0. Logs are JSON on stdout.

export async function agentCommand (argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(AGENT_USAGE)
    return 0
  }
  const options = parseAgentOptions(argv)
  const log = createLogger({ name: 'ferry-agent', level: options.logLevel })
  // Worker threads write their own lines to stdout too (one JSON line per write).
  const agent = await Agent.start(options, { platform: loadNativePlatform(), log, workerLog: { destination: 1, name: 'ferry-agent' } })
  return await serveUntilSignal(agent, log, 'agent')
}
