import { parseCommandOptions } from '../config/cli-args'
import { ferryError } from '../errors'
import { createLogger } from '../telemetry/logger'
import { serveUntilSignal } from '../cli/serve'
import { startLabApiServer } from './api-server-main'
import { readLabApiToken } from './kubeconfig'

// `ferry lab api-server --cluster-file FILE --listen HOST:PORT --token-file FILE`: the
// lab's list + watch server as a process of its own (so a test can kill and restart it
// like an API server), started by `ferry lab up --kubernetes-api` in the underlay's
// network namespace. Not in the usage: it is the lab's part, not a user's command.
// Logs are JSON on stdout: one line per list or watch request, one per sync.

export async function apiServerCommand (argv: string[]): Promise<number> {
  const values = parseCommandOptions('lab api-server', argv, {
    'cluster-file': { type: 'string' },
    listen: { type: 'string' },
    'token-file': { type: 'string' }
  })
  const clusterFile = values['cluster-file']
  const listen = values.listen
  const tokenFile = values['token-file']
  if (clusterFile === undefined || listen === undefined || tokenFile === undefined) {
    throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry lab api-server: --cluster-file, --listen and --token-file are required')
  }
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(listen)
  if (m === null || Number(m[2]) > 65535) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry lab api-server: --listen "${listen}" is invalid: expected IPv4:PORT`)
  const log = createLogger({ name: 'ferry-lab-api-server' })
  const running = await startLabApiServer({ clusterFile, host: m[1], port: Number(m[2]), token: readLabApiToken(tokenFile), log })
  return await serveUntilSignal(running, log, 'lab api-server')
}
