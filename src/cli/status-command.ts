import { parseArgs } from 'node:util'
import { ferryError } from '../errors'
import { parseDuration } from '../identity/duration'
import { formatMeshStatus } from '../status/format'
import { readMeshStatus } from '../status/mesh-status'
import { labAgents } from '../status/sources'

// `ferry status`: argument parsing and output only; the work is in src/status/.

export const STATUS_USAGE = `usage: ferry status --lab NAME [--output text|json] [--timeout 5s]

  Each node's agent: ready or not (and why not), enrolled pods, configuration and
  cluster generations, and each identity's certificate — serial, expiry, the last
  request to the CA and, while renewal fails, how many failures since when and the
  last error. An agent that does not answer is shown as unreachable.
  --lab NAME      the lab's agents (default: the only lab up)
  --output json   the same as one JSON document
  Exit status: 0 when every agent answered, 1 otherwise.
`

export async function statusCommand (argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { lab: { type: 'string' }, output: { type: 'string', short: 'o' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help === true) { process.stdout.write(STATUS_USAGE); return 0 }
  const output = values.output ?? 'text'
  if (output !== 'text' && output !== 'json') throw ferryError('FERRY_ERR_INVALID_ARG', `--output must be text or json, not "${output}"`)
  const timeoutMs = values.timeout === undefined ? 5000 : parseDuration(values.timeout, '--timeout', { minMs: 1 })
  const s = await readMeshStatus(labAgents(values.lab), { timeoutMs })
  process.stdout.write(output === 'json' ? JSON.stringify(s, null, 2) + '\n' : formatMeshStatus(s))
  return s.nodes.every((n) => n.reachable) ? 0 : 1
}
