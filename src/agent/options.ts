import { isAbsolute, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PORTS } from '../config/env'
import { ferryError } from '../errors'

// `ferry agent` options: parsed strictly (unknown options and stray arguments are
// errors), validated once, frozen. The rest of the agent only sees AgentOptions.

export interface AgentOptions {
  /** This node's name: pods with spec.nodeName equal to it are ours. */
  readonly node: string
  /** Absolute path of the Kubernetes List the lab (or a syncer) keeps current. */
  readonly clusterFile: string
  /** bpffs directory under which capture pins its maps and links. */
  readonly pinRoot: string
  /** Admin server (/metrics, /debug/pods) port on 0.0.0.0 in the node's netns; 0 picks one. */
  readonly adminPort: number
  /** Readiness server (/healthz/ready) port; 0 picks one. */
  readonly readyPort: number
  readonly logLevel: string
}

export const AGENT_USAGE = `usage: ferry agent --node NAME --cluster-file PATH --pin-root DIR
                   [--admin-port ${PORTS.admin}] [--ready-port ${PORTS.ready}] [--log-level info]

Runs the per-node agent in the node's network namespace: watches the cluster file,
enrolls this node's meshed pods in capture and proxies their TCP connections.
`

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
// RFC 1123 subdomain, as Kubernetes requires of node names.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

export function parseAgentOptions (argv: string[]): AgentOptions {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        node: { type: 'string' },
        'cluster-file': { type: 'string' },
        'pin-root': { type: 'string' },
        'admin-port': { type: 'string' },
        'ready-port': { type: 'string' },
        'log-level': { type: 'string' }
      }
    }).values
  } catch (err) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${(err as Error).message}`, { cause: err })
  }
  const node = required(values.node, '--node')
  if (node.length > 253 || !NODE_NAME.test(node)) {
    throw invalid('--node', node, 'a Kubernetes node name (lowercase letters, digits, "-" and ".")')
  }
  const pinRoot = required(values['pin-root'], '--pin-root')
  if (!isAbsolute(pinRoot)) throw invalid('--pin-root', pinRoot, 'an absolute path (a directory on bpffs)')
  const adminPort = port(values['admin-port'], '--admin-port', PORTS.admin)
  const readyPort = port(values['ready-port'], '--ready-port', PORTS.ready)
  if (adminPort !== 0 && adminPort === readyPort) throw invalid('--ready-port', String(readyPort), `a port other than --admin-port ${adminPort}`)
  const logLevel = (values['log-level'] as string | undefined) ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw invalid('--log-level', logLevel, `one of ${LOG_LEVELS.join(', ')}`)
  return Object.freeze({
    node,
    clusterFile: resolve(required(values['cluster-file'], '--cluster-file')),
    pinRoot,
    adminPort,
    readyPort,
    logLevel
  })
}

function required (value: string | boolean | undefined, name: string): string {
  if (typeof value !== 'string' || value === '') throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${name} is required\n\n${AGENT_USAGE}`)
  return value
}

function port (value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : NaN
  if (!(n >= 0 && n <= 65535)) throw invalid(name, String(value), 'a port number 0-65535 (0: any free port)')
  return n
}

function invalid (name: string, value: string, expected: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${name} "${value}" is invalid: expected ${expected}`)
}
