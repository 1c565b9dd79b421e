import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { ClusterSnapshot } from '../discovery/model'
import { ferryError, isFerryError } from '../errors'
import { formatIssue } from '../resources/issues'
import { loadResourceDirectory } from '../resources/loader'
import { checkRoute, type RouteCheck, type RouteCheckInput, routeCheckText } from '../routing/check'
import { type RouteConfig, RoutingTable } from '../routing/routing-table'

// `ferry route …`: argument parsing and output only; the work is in src/routing/check.ts
// — from files (--dir, --cluster-file), or asked of a running agent (its /debug/routes).

export const ROUTE_USAGE = `usage: ferry route <command> [options]

  check --dir DIR --cluster-file FILE --from NS/POD --to NS/SERVICE[:PORT]
        [--path P] [--method M] [--header K=V]... [--host H] [--json]
        which route, rule and backend the request from the pod to the Service port
        takes, and why: the HTTPRoutes, GRPCRoutes, VirtualServices and
        DestinationRules in DIR, the Services and pods in FILE (a Kubernetes v1 List,
        such as a lab's cluster.json). PORT: a number or a port name (default: the
        Service's first port). --path may carry a query (/a?b=c). Headers are matched
        by lower-case name; content-type application/grpc makes it a gRPC request.
  check --lab NAME [--node NODE] | --agent HOST:PORT --token-file FILE, and the same
        request options: answered by a running agent from its live configuration and
        cluster snapshot (its admin server's /debug/routes).
`

const AGENT_TIMEOUT_MS = 5000

export async function routeCommand (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === 'check') return await check(rest)
  process.stderr.write(ROUTE_USAGE)
  return sub === undefined || sub === '--help' || sub === 'help' ? 0 : 1
}

async function check (argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string' },
      'cluster-file': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      path: { type: 'string' },
      method: { type: 'string' },
      host: { type: 'string' },
      header: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      lab: { type: 'string' },
      node: { type: 'string' },
      agent: { type: 'string' },
      'token-file': { type: 'string' }
    },
    strict: true
  })
  if (v.from === undefined || v.to === undefined) throw usage('--from and --to are required')
  const headers: Record<string, string> = {}
  for (const h of v.header ?? []) {
    const eq = h.search(/[=:]/)
    if (eq <= 0) throw usage(`--header ${h}: expected K=V`)
    headers[h.slice(0, eq).trim().toLowerCase()] = h.slice(eq + 1).trim()
  }
  const input: RouteCheckInput = { from: v.from, to: v.to, headers, ...(v.path === undefined ? {} : { path: v.path }), ...(v.method === undefined ? {} : { method: v.method }), ...(v.host === undefined ? {} : { host: v.host }) }
  let result: RouteCheck
  if (v.lab !== undefined || v.agent !== undefined) {
    if (v.dir !== undefined || v['cluster-file'] !== undefined) throw usage('--dir and --cluster-file are for checking files; with --lab or --agent the agent uses its own')
    result = await askAgent(v, input)
  } else {
    if (v.dir === undefined || v['cluster-file'] === undefined) throw usage('give --dir and --cluster-file (or --lab / --agent)')
    const cluster = await readCluster(v['cluster-file'])
    const snapshot = await loadResourceDirectory(v.dir)
    for (const o of snapshot.objects.filter((x) => x.state === 'refused')) process.stderr.write(`refused, not in force: ${o.issues.map(formatIssue).join('\n  ')}\n`)
    try {
      result = checkRoute(RoutingTable.build(cluster, snapshot as unknown as Partial<RouteConfig>), cluster, input)
    } catch (err) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `ferry route check: ${(err as Error).message}`, { cause: err })
    }
  }
  process.stdout.write(v.json === true ? JSON.stringify(result, null, 2) + '\n' : routeCheckText(result))
  return 0
}

async function askAgent (v: { lab?: string, node?: string, agent?: string, 'token-file'?: string }, input: RouteCheckInput): Promise<RouteCheck> {
  const { addressAgentEndpoint, getAgentJson, labAgentEndpoint } = await import('../lab/agent-admin.js')
  let endpoint
  try {
    const token = v['token-file'] === undefined ? undefined : (await readFile(v['token-file'], 'utf8')).trim()
    endpoint = v.lab !== undefined ? labAgentEndpoint(v.lab, v.node) : addressAgentEndpoint(v.agent as string, token)
    const query = new URLSearchParams({ from: input.from, to: input.to })
    for (const k of ['path', 'method', 'host'] as const) if (input[k] !== undefined) query.set(k, input[k] as string)
    for (const [k, val] of Object.entries(input.headers ?? {})) query.append('header', `${k}=${val}`)
    const reply = await getAgentJson(endpoint, `/debug/routes?${query.toString()}`, { timeoutMs: AGENT_TIMEOUT_MS })
    if (reply.status !== 200) throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `ferry route check: agent ${endpoint.description} answered ${reply.status}: ${String(reply.body?.error ?? JSON.stringify(reply.body))}`)
    return reply.body as RouteCheck
  } catch (err) {
    if (isFerryError(err)) throw err
    throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `ferry route check: ${(err as Error).message}`, { cause: err })
  } finally {
    endpoint?.close()
  }
}

async function readCluster (file: string): Promise<ClusterSnapshot> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw ferryError('FERRY_ERR_CONFIG', `${path}: cannot read the cluster file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err })
  }
  const { parseClusterList } = await import('../discovery/cluster-list.js')
  return parseClusterList(text, path, 1)
}

function usage (text: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry route check: ${text}\n\n${ROUTE_USAGE}`)
}
