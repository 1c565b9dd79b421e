import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PORTS } from '../config/env'
import type { ClusterSnapshot } from '../discovery/model'
import { ERROR_CODES, ferryError, type FerryErrorCode, isFerryError } from '../errors'
import { l7ForCheck, type L7CheckLine, l7CheckText, l7LinesOf } from '../l7/cli'
import { validateTrustDomain } from '../identity/spiffe-id'
import { type CheckResult, checkConnection } from '../policy/check'
import type { HttpRequestSpec } from '../policy/http-request'
import { compilePolicySet } from '../policy/policy-set'
import { explanationText } from '../policy/explain-text'
import { POLICY_DEFAULTS } from '../policy/model'
import { formatIssue } from '../resources/issues'
import { loadResourceDirectory } from '../resources/loader'
import { countByState } from '../resources/reports'
import { CONFIG_DEFAULTS } from '../resources/snapshot'

// `ferry policy …`: argument parsing and output only; the work is in src/policy/ and
// src/resources/ — or, with --lab / --agent, in a running agent (its /debug/authz),
// which this asks over HTTP.

export const POLICY_USAGE = `usage: ferry policy <command> [options]

  check --dir DIR --from SOURCE --to DEST [--cluster-file FILE] [--json]
        [--root-namespace ${CONFIG_DEFAULTS.rootNamespace}] [--trust-domain ${POLICY_DEFAULTS.trustDomain}]
        decide a connection against the policies in DIR (or one file) and say which
        policy, rule and field decided it. Exit 0: allowed, 3: denied, 1: error.
          SOURCE  cluster.local/ns/NS/sa/SA (an identity), NS/POD, or an IP address
          DEST    NS/KEY=VALUE[,KEY=VALUE]:PORT (a workload by labels, at its own port),
                  NS/SERVICE:PORT (every workload behind the Service, at its target port),
                  or NS/POD:PORT
        Pod and Service names are looked up in --cluster-file (a Kubernetes v1 List, such
        as a lab's cluster.json).
        With --path, --method, --header or --host: decide that HTTP request (at L7,
        where an L7 policy's methods, paths, hosts and headers are evaluated) instead of
        a connection (where they are not: an L7 ALLOW rule cannot match it, an L7 DENY
        rule applies without them):
          --path P        the request-target as sent (normalized as the proxy does:
                          MERGE_SLASHES; default /)
          --method M      default GET
          --header K:V    repeatable
          --host H        the Host / :authority
  check --lab NAME [--node NODE] --from SOURCE --to DEST [HTTP options] [--json]
  check --agent HOST:PORT --token-file FILE --from SOURCE --to DEST [HTTP options] [--json]
        the same, answered by a running agent from its live configuration and cluster
        snapshot (its admin server's /debug/authz): a lab node's agent (default: the
        lab's first node; reached inside the node's network namespace, with the lab's
        admin token), or any agent whose admin port (${PORTS.admin}) this host reaches,
        with a bearer token it accepts (its --admin-token-file's, or a Kubernetes token
        whose user may \`get\` agents/debug in group ferry.dev).
  validate --dir DIR [--root-namespace ${CONFIG_DEFAULTS.rootNamespace}]
        judge every document in DIR object by object, as agents do: print each object
        and its state — accepted, degraded (enforced narrower than written: what Ferry
        leaves out and why) or refused (every problem with its file, line and field).
        Exit 0: nothing refused, 1: an object refused (or DIR unreadable).

  With --dir, check judges the documents object by object too: a refused object is not
  in force (named on stderr), everything else decides.
`

const EXIT_DENIED = 3
/** How long the agent has to answer `check --lab/--agent`. */
const AGENT_TIMEOUT_MS = 10_000

type Sub = (argv: string[]) => Promise<number>
const SUBCOMMANDS: Record<string, Sub> = { check, validate }

export async function policyCommand (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    process.stdout.write(POLICY_USAGE)
    return sub === undefined ? 2 : 0
  }
  const run = SUBCOMMANDS[sub]
  if (run === undefined) {
    process.stderr.write(`ferry policy: unknown command "${sub}"\n\n${POLICY_USAGE}`)
    return 2
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(POLICY_USAGE)
    return 0
  }
  return await run(rest)
}

async function check (argv: string[]): Promise<number> {
  const v = parse('check', argv, {
    dir: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    'cluster-file': { type: 'string' },
    'root-namespace': { type: 'string' },
    'trust-domain': { type: 'string' },
    json: { type: 'boolean' },
    lab: { type: 'string' },
    node: { type: 'string' },
    agent: { type: 'string' },
    'token-file': { type: 'string' },
    path: { type: 'string' },
    method: { type: 'string' },
    host: { type: 'string' },
    header: { type: 'string', multiple: true }
  })
  const from = required(v.from, '--from')
  const to = required(v.to, '--to')
  const http = httpSpec(v)
  const live = v.lab !== undefined || v.agent !== undefined
  let result: CheckResult
  let l7: readonly L7CheckLine[] = []
  let answeredBy: string | null = null
  if (live) {
    const fileOnly = ['dir', 'cluster-file', 'root-namespace', 'trust-domain'].filter((o) => v[o] !== undefined)
    if (v.lab !== undefined && v.agent !== undefined) throw usage('give --lab or --agent, not both')
    if (fileOnly.length > 0) throw usage(`--${fileOnly[0]} is for checking files; with --lab or --agent the agent uses its own configuration, cluster and trust domain`)
    if (v.node !== undefined && v.lab === undefined) throw usage('--node goes with --lab')
    if (v['token-file'] !== undefined && v.agent === undefined) throw usage('--token-file goes with --agent (a lab\'s agents take the lab\'s token)')
    const answer = await askAgent(v, from, to, http)
    result = answer.result
    l7 = answer.l7
    answeredBy = `answered by agent ${answer.agent}: live configuration generation ${answer.generation}`
  } else {
    if (v.node !== undefined) throw usage('--node goes with --lab')
    if (v['token-file'] !== undefined) throw usage('--token-file goes with --agent')
    const dir = required(v.dir, '--dir (or --lab / --agent)')
    const trustDomain = typeof v['trust-domain'] === 'string' ? v['trust-domain'] : POLICY_DEFAULTS.trustDomain
    validateTrustDomain(trustDomain)
    const cluster = typeof v['cluster-file'] === 'string' ? await readCluster(v['cluster-file']) : null
    const snapshot = await loadResourceDirectory(dir, { rootNamespace: rootNamespaceOf(v) })
    for (const o of snapshot.objects.filter((x) => x.state === 'refused')) {
      process.stderr.write(`refused, not in force: ${[...o.issues.map(formatIssue), ...(o.note === undefined ? [] : [`${o.object}: ${o.note}`])].join('\n  ')}\n`)
    }
    const set = compilePolicySet(snapshot)
    result = checkConnection(set, from, to, { cluster, trustDomain }, http)
    l7 = l7ForCheck(set, to, cluster)
  }
  if (v.json === true) {
    process.stdout.write(JSON.stringify({ ...(answeredBy === null ? {} : { answeredBy }), ...result, l7 }, null, 2) + '\n')
  } else {
    const cwd = process.cwd()
    const r = result.request
    if (r !== undefined && r.rawPath !== r.path) process.stdout.write(`path ${JSON.stringify(r.rawPath)} is normalized to ${JSON.stringify(r.path)} (MERGE_SLASHES), as the proxy forwards and matches it\n\n`)
    process.stdout.write(result.results.map((r) => explanationText(r.explanation, { cwd, source: result.source, destination: r.destination })).join('\n'))
    process.stdout.write(l7CheckText(l7))
    if (answeredBy !== null) process.stdout.write(answeredBy + '\n')
  }
  return result.allowed ? 0 : EXIT_DENIED
}

async function readToken (file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch (err) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry policy check: --token-file ${file}: cannot read: ${(err as Error).message}`, { cause: err })
  }
}

interface AgentAnswer { readonly agent: string, readonly generation: number, readonly result: CheckResult, readonly l7: readonly L7CheckLine[] }

/** The HTTP request to decide, from --path, --method, --host, --header. */
function httpSpec (v: Values): HttpRequestSpec {
  const str = (k: string): { [key: string]: string } => typeof v[k] === 'string' ? { [k]: v[k] as string } : {}
  const headers = Array.isArray(v.header) ? v.header.filter((h): h is string => typeof h === 'string') : []
  return { ...str('method'), ...str('path'), ...str('host'), headers }
}

/** GET /debug/authz from a lab node's agent or from --agent HOST:PORT. */
async function askAgent (v: Values, from: string, to: string, http: HttpRequestSpec): Promise<AgentAnswer> {
  // Loaded only when needed: it opens the native addon.
  const { addressAgentEndpoint, getAgentJson, labAgentEndpoint } = await import('../lab/agent-admin.js')
  let endpoint
  let reply
  try {
    endpoint = typeof v.lab === 'string'
      ? labAgentEndpoint(v.lab, typeof v.node === 'string' ? v.node : undefined)
      : addressAgentEndpoint(v.agent as string, typeof v['token-file'] === 'string' ? await readToken(v['token-file']) : undefined)
    const query = new URLSearchParams({ from, to })
    for (const k of ['method', 'path', 'host'] as const) if (http[k] !== undefined) query.set(k, http[k] as string)
    for (const h of http.headers ?? []) query.append('header', h)
    reply = await getAgentJson(endpoint, `/debug/authz?${query.toString()}`, { timeoutMs: AGENT_TIMEOUT_MS })
  } catch (err) {
    throw prefixed(err)
  } finally {
    endpoint?.close()
  }
  const agent = endpoint.description
  const body = reply.body
  if (reply.status !== 200) {
    const code: FerryErrorCode = typeof body?.code === 'string' && body.code in ERROR_CODES ? body.code : 'FERRY_ERR_AGENT_UNAVAILABLE'
    const why = String(body?.error ?? JSON.stringify(body)).replace(/^ferry policy check: /, '')
    throw ferryError(code, `ferry policy check: agent ${agent} answered ${reply.status}: ${why}`)
  }
  if (typeof body?.generation !== 'number' || !Array.isArray(body.results)) {
    throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `ferry policy check: agent ${agent} answered something that is not an explanation`)
  }
  return {
    agent,
    generation: body.generation,
    result: { allowed: body.allowed === true, source: String(body.source), ...(body.request === undefined ? {} : { request: body.request }), results: body.results },
    l7: l7LinesOf(body.l7)
  }
}

/** The command's name in front of a FerryError's message. */
function prefixed (err: unknown): unknown {
  return isFerryError(err) ? ferryError(err.code as FerryErrorCode, `ferry policy check: ${err.message}`, { cause: err, errno: err.errno }) : err
}

function usage (message: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry policy check: ${message}\n\n${POLICY_USAGE}`)
}

async function validate (argv: string[]): Promise<number> {
  const v = parse('validate', argv, { dir: { type: 'string' }, 'root-namespace': { type: 'string' } })
  const dir = required(v.dir, '--dir')
  const snapshot = await loadResourceDirectory(dir, { rootNamespace: rootNamespaceOf(v) })
  const counts = countByState(snapshot.objects)
  const summary = new Map<string, string>([
    ...snapshot.authorizationPolicies.map((p): [string, string] => [`AuthorizationPolicy ${p.ref}`, `${p.spec.action}${p.dryRun ? ' [dry-run]' : ''}`]),
    ...snapshot.peerAuthentications.map((p): [string, string] => [`PeerAuthentication ${p.ref}`, p.spec.mtls?.mode ?? 'UNSET']),
    ...snapshot.rateLimits.map((r): [string, string] => [`RateLimit ${r.ref}`, `${r.spec.limit.requests}/${r.spec.limit.per} burst ${r.spec.limit.burst ?? r.spec.limit.requests}`])
  ])
  const verdict = counts.refused > 0 ? 'not valid' : counts.degraded > 0 ? 'valid, not all enforced as written' : 'valid'
  const lines = [`${snapshot.origin}: ${verdict} (${snapshot.files.length} file${snapshot.files.length === 1 ? '' : 's'}, root namespace ${snapshot.rootNamespace}; ` +
    `${counts.accepted} accepted, ${counts.degraded} degraded, ${counts.refused} refused)`]
  for (const o of snapshot.objects) {
    const what = summary.get(o.object)
    lines.push(`  ${o.state.padEnd(8)}  ${o.object}${what === undefined ? '' : `  ${what}`}${o.apiVersion === null ? '' : `  ${o.apiVersion}`}`)
    for (const i of o.issues) lines.push(`      ${formatIssue(i)}`)
    if (o.note !== undefined) lines.push(`      → ${o.note}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
  return counts.refused > 0 ? 1 : 0
}

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>

function parse (sub: string, argv: string[], options: Record<string, { type: 'string' | 'boolean', multiple?: boolean }>): Values {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values
  } catch (err) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry policy ${sub}: ${(err as Error).message}`, { cause: err })
  }
}

function required (value: Values[string], name: string): string {
  if (typeof value !== 'string' || value === '') throw ferryError('FERRY_ERR_INVALID_ARG', `ferry policy: ${name} is required\n\n${POLICY_USAGE}`)
  return value
}

function rootNamespaceOf (v: Values): string {
  const ns = v['root-namespace']
  if (ns === undefined) return CONFIG_DEFAULTS.rootNamespace
  if (typeof ns !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry policy: --root-namespace "${String(ns)}" is invalid: expected a Kubernetes namespace name`)
  }
  return ns
}

async function readCluster (file: string): Promise<ClusterSnapshot> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw ferryError('FERRY_ERR_CONFIG', `${path}: cannot read the cluster file (${code ?? 'error'})`, { cause: err, errno: code })
  }
  // Loaded only when needed: its schema compiles at import.
  const { parseClusterList } = await import('../discovery/cluster-list.js')
  return parseClusterList(text, path, 1)
}
