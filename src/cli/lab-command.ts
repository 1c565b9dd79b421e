import { createReadStream, existsSync } from 'node:fs'
import { DRAIN_GRACE_MAX_MS } from '../agent/options'
import { parseWorkerCount } from '../agent/worker-count'
import { join, resolve as resolvePath } from 'node:path'
import { parseArgs } from 'node:util'
import { ferryError } from '../errors'
import { parseCertTtl } from '../identity/cert-ttl'
import { parseDuration } from '../identity/duration'
import { labDown } from '../lab/down'
import { labExec, type ExecTarget } from '../lab/exec'
import { defaultPaths, listLabs, loadLab, requireRoot, resolveLabName } from '../lab/labs'
import { logPath, type LogTarget } from '../lab/logs'
import { DEFAULT_LAB_NAME } from '../lab/names'
import { labApplyFiles, labDeleteFiles } from '../lab/apply'
import { readState } from '../lab/state'
import { formatStatus, labStatus } from '../lab/status'
import { restartAgent, restartApiServer, restartController, restartKubelet, startAgent, startController, stopAgent, stopController } from '../lab/restart'
import type { CniPluginOption, LabTracing } from '../lab/topology'
import { parseTracingOptions } from '../telemetry/tracing/config'
import { apiServerCommand } from '../lab/api-server-command'
import { DEFAULT_UP_TIMEOUT_MS, labUp } from '../lab/up'
import { DEFAULT_NAMESPACE } from '../lab/manifest/spec'

// `ferry lab …`: argument parsing and output only; the work is in src/lab/.

export const LAB_USAGE = `usage: ferry lab <command> [options]

  up [--name NAME] [--no-mesh] [--timeout SECONDS] FILE… [--cert-ttl 24h] [--kubernetes-api] [--sockmap on|off] [--workers N]
     [--drain-grace 25s] [--cni-plugin PATH|JSON]… [--otlp-endpoint URL [--otlp-protocol grpc|http/protobuf] [--trace-sampling PERCENT]]
        build simulated nodes and pods from Kubernetes manifests (Node, Namespace,
        Pod, Service); returns when every pod is running and, with the mesh, enrolled
        and holding its certificate from the lab's controller (CA), whose workload
        certificates live --cert-ttl (e.g. 24h, 30m, 6s). Each node runs a kubelet
        that runs the pods' readiness, liveness and startup probes (httpGet, tcpSocket,
        grpc, exec) from its own cgroup and the node's address, restarts containers
        whose liveness probe fails, and publishes each pod's status (Ready condition,
        restarts) into the lab's cluster.json. With --kubernetes-api the lab serves
        its objects over the Kubernetes list + watch protocol (plain HTTP, in the
        underlay) and the agents run as on a cluster: --kubernetes, pods found by
        their kubelet-style cgroups and their processes' network namespaces.
        --sockmap off runs the agents without the sockmap shortcut of the
        pod <-> proxy hops (to compare; default on). --workers N runs the
        agents with N data-path workers (default: $FERRY_LAB_WORKERS if set, else
        the agent's). --drain-grace is the agents' (how long an agent stopped by
        SIGTERM, as in restart --signal TERM, lets live connections finish before
        it closes them; default the agent's 25s). --cni-plugin chains a CNI
        plugin after the lab's own in every node's conflist: a path (its type is the
        file name), or {"path": …, "type": …, other conflist keys}; the lab calls
        the chain's ADD before a pod's containers start (retried until --timeout)
        and DEL when the pod goes. --otlp-endpoint, --otlp-protocol and
        --trace-sampling are the agents' (docs/tracing.md): where they export
        their spans (the URL must be reachable from the nodes, e.g. a collector on
        the underlay) and the percentage of new traces sampled
  down [NAME]                       remove a lab completely (works after a crash too)
  apply [--timeout 60s] FILE…       add objects to the running lab, by kind:
                                    Pods, Services and Namespaces (validated against
                                    the lab, then made as up makes them; returns when
                                    the pods run, else removes them again and says
                                    why), and AuthorizationPolicy / PeerAuthentication
                                    documents into the lab's config directory, which
                                    every agent watches (validated first: file, line,
                                    field; written atomically)
  delete FILE…                      remove those objects (pods: stopped, CNI DEL,
                                    everything of theirs removed), and the config
                                    files of those names
  status [NAME] [--json]            nodes, pods (phase, readiness, restarts), services,
                                    processes (no NAME and several labs up: one line per lab)
  list                              the labs that are up
  exec [-n NS] [-c CONTAINER] POD -- CMD…   run CMD in a pod (captured like the pod)
  exec --node NODE -- CMD…          run CMD in a node's network namespace
  exec --underlay -- CMD…           run CMD in the underlay's network namespace
  logs [-n NS] [-c CONTAINER] POD   print a container's log
  logs --node NODE                  print a node agent's log
  logs --kubelet NODE               print a node kubelet's log (probe results, restarts)
  restart --node NODE [--signal KILL|TERM] [--down-for 0s] [--timeout 30s]
                                    KILL (default): kill a node's agent, as in a crash,
                                    keep it stopped --down-for, and start a new one, as
                                    kubelet would; returns when it has enrolled the
                                    node's pods again. TERM: the DaemonSet's rollout — a
                                    new agent starts beside the old one and takes its
                                    listening sockets over; once it is ready the old
                                    one gets SIGTERM and drains (no --down-for)
  stop --node NODE [--signal KILL|TERM]
  start --node NODE [--timeout 30s] the two halves of restart --node: the node's agent
                                    stays stopped (its pods run on) until start
  stop --controller [--signal KILL|TERM]
  start --controller [--timeout 30s]
                                    the two halves of restart --controller: the CA stays
                                    stopped (a control-plane outage: agents serve on the
                                    certificates in hand and retry) until start, which
                                    returns once it accepts connections
  restart --kubelet NODE [--signal KILL|TERM] [--timeout 30s]
                                    stop a node's kubelet and start a new one
  restart --controller [--signal KILL|TERM] [--down-for 0s] [--timeout 30s]
                                    stop the lab's controller (CA), keep it stopped
                                    --down-for, start it again (also starts one that
                                    is not running); agents are left alone
  restart --api-server [--signal KILL|TERM] [--down-for 0s] [--timeout 30s]
                                    the same for the API server of a --kubernetes-api
                                    lab (agents' watches then re-list after 410 Gone)

  Durations: 30s, 500ms, 2m, 1h30m, or a number of seconds (30).
  With several labs up, every command but up takes --lab NAME (default: the only lab up).
  The default name for \`up\` is "${DEFAULT_LAB_NAME}".
`

type Sub = (argv: string[]) => Promise<number>

/** --timeout: a wait of no time at all would fail at once. */
const POSITIVE = Object.freeze({ minMs: 1 })

// `api-server` and `kubelet` are not listed in the usage: `up` starts them (the API server
// with --kubernetes-api, in the underlay; a kubelet per node, in the node).
const SUBCOMMANDS: Record<string, Sub> = {
  up,
  down,
  apply,
  delete: remove,
  status,
  list,
  exec,
  logs,
  restart,
  stop,
  start,
  'api-server': apiServerCommand,
  // Loaded only here: the kubelet's probes pull in gRPC.
  kubelet: async (argv) => await (require('../lab/kubelet/command') as typeof import('../lab/kubelet/command')).kubeletCommand(argv)
}

async function apply (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { lab: { type: 'string' }, timeout: { type: 'string' } } })
  const state = loadLab(resolveLabName(values.lab))
  const ac = new AbortController()
  const r = await whileSignalled(ac, async () => await labApplyFiles(state, positionals, {
    timeoutMs: values.timeout === undefined ? DEFAULT_UP_TIMEOUT_MS : parseDuration(values.timeout, '--timeout', POSITIVE),
    signal: ac.signal,
    say: (line) => { process.stderr.write(`ferry lab: ${line}\n`) }
  }))
  for (const w of r.written) process.stdout.write(`applied ${w}\n`)
  for (const d of r.degraded) process.stderr.write(`degraded: ${d}\n`)
  for (const c of r.created) process.stdout.write(`${c} created\n`)
  for (const u of r.unchanged) process.stdout.write(`${u} unchanged\n`)
  return 0
}

async function remove (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { lab: { type: 'string' } } })
  const state = loadLab(resolveLabName(values.lab))
  const { removed, deleted } = await labDeleteFiles(state, positionals, { say: (line) => { process.stderr.write(`ferry lab: ${line}\n`) } })
  for (const r of removed) process.stdout.write(`deleted ${r}\n`)
  for (const d of deleted) process.stdout.write(`${d} deleted\n`)
  return 0
}

/** Runs `work` with SIGINT/SIGTERM aborting `ac` (the work rolls back what it made). */
async function whileSignalled<T> (ac: AbortController, work: () => Promise<T>): Promise<T> {
  const onSignal = (): void => { ac.abort() }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    return await work()
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

export async function labCommand (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    process.stdout.write(LAB_USAGE)
    return sub === undefined ? 2 : 0
  }
  const run = SUBCOMMANDS[sub]
  if (run === undefined) {
    process.stderr.write(`ferry lab: unknown command "${sub}"\n\n${LAB_USAGE}`)
    return 2
  }
  return await run(rest)
}

async function up (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      'no-mesh': { type: 'boolean' },
      timeout: { type: 'string' },
      'cert-ttl': { type: 'string' },
      'kubernetes-api': { type: 'boolean' },
      sockmap: { type: 'string' },
      workers: { type: 'string' },
      'drain-grace': { type: 'string' },
      'cni-plugin': { type: 'string', multiple: true },
      'otlp-endpoint': { type: 'string' },
      'otlp-protocol': { type: 'string' },
      'trace-sampling': { type: 'string' }
    }
  })
  const certTtl = values['cert-ttl']
  if (certTtl !== undefined && values['no-mesh'] === true) throw ferryError('FERRY_ERR_INVALID_ARG', '--cert-ttl needs the mesh (it is the lifetime of the certificates the mesh gives pods)')
  const certTtlMs = certTtl === undefined ? undefined : parseCertTtl(certTtl, '--cert-ttl')
  const sockmap = values.sockmap ?? 'on'
  if (sockmap !== 'on' && sockmap !== 'off') throw ferryError('FERRY_ERR_INVALID_ARG', `--sockmap "${sockmap}" is invalid: expected "on" or "off"`)
  const workers = values.workers === undefined ? undefined : parseWorkerCount(values.workers, '--workers')
  const drainGrace = values['drain-grace']
  const drainGraceMs = drainGrace === undefined ? undefined : parseDuration(drainGrace, '--drain-grace', { maxMs: DRAIN_GRACE_MAX_MS })
  const cniPlugins = (values['cni-plugin'] ?? []).map(parseCniPlugin)
  const tracing = labTracing(values['otlp-endpoint'], values['otlp-protocol'], values['trace-sampling'], values['no-mesh'] === true)
  const ac = new AbortController()
  const state = await whileSignalled(ac, async () => await labUp({
    name: values.name ?? DEFAULT_LAB_NAME,
    files: positionals,
    mesh: values['no-mesh'] !== true,
    timeoutMs: values.timeout === undefined ? DEFAULT_UP_TIMEOUT_MS : parseDuration(values.timeout, '--timeout', POSITIVE),
    certTtlMs,
    kubernetesApi: values['kubernetes-api'] === true,
    sockmap: sockmap === 'on',
    workers,
    drainGraceMs,
    cniPlugins,
    ...(tracing === undefined ? {} : { tracing }),
    signal: ac.signal,
    log: (line) => { process.stderr.write(`ferry lab: ${line}\n`) }
  }))
  process.stdout.write(formatStatus(await labStatus(state)))
  return 0
}

/** The agents' tracing flags, checked as the agent will check them (its environment aside). */
export function labTracing (endpoint: string | undefined, protocol: string | undefined, sampling: string | undefined, noMesh: boolean): LabTracing | undefined {
  const parsed = parseTracingOptions({ endpoint, protocol, sampling }, {}, 'ferry lab up')
  if (parsed === null || endpoint === undefined) return undefined
  if (noMesh) throw ferryError('FERRY_ERR_INVALID_ARG', '--otlp-endpoint needs the mesh: without it the lab runs no agent to trace')
  return {
    endpoint,
    ...(protocol === undefined ? {} : { protocol: parsed.protocol }),
    ...(sampling === undefined ? {} : { samplingPercent: parsed.samplingPercent })
  }
}

/** --cni-plugin PATH, or a JSON object {"path": PATH, "type"?: NAME, …further conflist keys}. */
export function parseCniPlugin (value: string): CniPluginOption {
  if (!value.trimStart().startsWith('{')) {
    if (!existsSync(value)) throw ferryError('FERRY_ERR_INVALID_ARG', `--cni-plugin ${value}: no such file`)
    return { path: resolvePath(value) }
  }
  let o: Record<string, unknown>
  try {
    o = JSON.parse(value) as Record<string, unknown>
  } catch (e) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `--cni-plugin: not a path or a JSON object: ${(e as Error).message}`)
  }
  const { path, type, ...config } = o
  if (typeof path !== 'string' || !existsSync(path)) throw ferryError('FERRY_ERR_INVALID_ARG', `--cni-plugin: "path" must name an executable (${String(path)})`)
  if (type !== undefined && (typeof type !== 'string' || type === '' || type.includes('/'))) throw ferryError('FERRY_ERR_INVALID_ARG', '--cni-plugin: "type" must be a file name')
  return { path: resolvePath(path), ...(type === undefined ? {} : { type: type as string }), config }
}

async function down (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { lab: { type: 'string' } } })
  requireRoot('ferry lab down')
  const name = resolveLabName(values.lab ?? one(positionals, 'NAME'))
  const report = await labDown(name)
  if (!report.found) throw ferryError('FERRY_ERR_LAB_NOT_FOUND', `nothing of a lab named "${name}" was found`)
  process.stdout.write(`lab ${name} removed (${report.netns.length} network namespaces, ${report.signalled} processes signalled)\n`)
  return 0
}

async function status (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { lab: { type: 'string' }, json: { type: 'boolean' } } })
  const named = values.lab ?? one(positionals, 'NAME')
  const labs = listLabs()
  if (named === undefined && labs.length !== 1) {
    // No lab or several: a line each, rather than a guess.
    const rows = labs.map((name) => {
      const s = readState(join(defaultPaths().labStateDir, name, 'state.json'))
      return s === null
        ? { name, phase: 'unknown (no readable state: `ferry lab down` it)' }
        : { name, phase: s.phase, mesh: s.plan.mesh, nodes: s.plan.nodes.length, pods: s.plan.pods.length }
    })
    if (values.json === true) process.stdout.write(JSON.stringify(rows, null, 2) + '\n')
    else if (rows.length === 0) process.stdout.write('no lab is up\n')
    else for (const r of rows) process.stdout.write(`${r.name}\t${r.phase}${r.pods === undefined ? '' : `\t${r.mesh === true ? 'mesh' : 'no mesh'}\t${r.nodes} nodes\t${r.pods} pods`}\n`)
    return 0
  }
  const s = await labStatus(loadLab(resolveLabName(named)))
  process.stdout.write(values.json === true ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s))
  return 0
}

async function restart (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      lab: { type: 'string' },
      node: { type: 'string' },
      kubelet: { type: 'string' },
      controller: { type: 'boolean' },
      'api-server': { type: 'boolean' },
      signal: { type: 'string' },
      timeout: { type: 'string' },
      'down-for': { type: 'string' }
    }
  })
  requireRoot('ferry lab restart')
  const signal = signalOf(values.signal)
  const targets = [values.controller === true, values['api-server'] === true, values.node !== undefined, values.kubelet !== undefined].filter((x) => x).length
  if (targets !== 1) throw ferryError('FERRY_ERR_INVALID_ARG', 'restart takes one of --node NODE, --kubelet NODE, --controller or --api-server')
  const timeoutMs = values.timeout === undefined ? 30_000 : parseDuration(values.timeout, '--timeout', POSITIVE)
  const downForMs = values['down-for'] === undefined ? undefined : parseDuration(values['down-for'], '--down-for')
  if (values.node !== undefined && signal === 'TERM' && downForMs !== undefined) {
    throw ferryError('FERRY_ERR_INVALID_ARG', 'restart --node with --signal TERM is a rollout (the new agent starts beside the old one): it has no --down-for; use stop and start for a node without its agent')
  }
  const state = loadLab(resolveLabName(values.lab))
  if (values['api-server'] === true) {
    const r = await restartApiServer(state, { signal: `SIG${signal}`, timeoutMs, downForMs })
    process.stdout.write(`API server restarted (${r.oldPids} process(es) sent SIG${signal}; new pid ${String(r.newPid)})\n`)
    return 0
  }
  if (values.controller === true) {
    const r = await restartController(state, { signal: `SIG${signal}`, timeoutMs, downForMs })
    process.stdout.write(`controller restarted (${r.oldPids} process(es) sent SIG${signal}; new pid ${String(r.newPid)})\n`)
    return 0
  }
  if (values.kubelet !== undefined) {
    const r = await restartKubelet(state, { node: values.kubelet, signal: `SIG${signal}`, timeoutMs, downForMs })
    process.stdout.write(`kubelet of node ${values.kubelet} restarted (${r.oldPids} process(es) sent SIG${signal}; new pid ${String(r.newPid)})\n`)
    return 0
  }
  const r = await restartAgent(state, { node: required(values.node, '--node'), signal: `SIG${signal}`, timeoutMs, downForMs })
  process.stdout.write(`agent of node ${values.node as string} restarted (${r.oldPids} process(es) sent SIG${signal}; new pid ${String(r.newPid)})\n`)
  return 0
}

async function stop (argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { lab: { type: 'string' }, node: { type: 'string' }, controller: { type: 'boolean' }, signal: { type: 'string' } } })
  requireRoot('ferry lab stop')
  const signal = signalOf(values.signal)
  if (values.controller === true) {
    if (values.node !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', 'stop takes one of --node NODE or --controller')
    const r = await stopController(loadLab(resolveLabName(values.lab)), { signal: `SIG${signal}` })
    process.stdout.write(`controller stopped (${r.oldPids} process(es) sent SIG${signal})\n`)
    return 0
  }
  const node = required(values.node, '--node')
  const r = await stopAgent(loadLab(resolveLabName(values.lab)), { node, signal: `SIG${signal}` })
  process.stdout.write(`agent of node ${node} stopped (${r.oldPids} process(es) sent SIG${signal})\n`)
  return 0
}

async function start (argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { lab: { type: 'string' }, node: { type: 'string' }, controller: { type: 'boolean' }, timeout: { type: 'string' } } })
  requireRoot('ferry lab start')
  const timeoutMs = values.timeout === undefined ? 30_000 : parseDuration(values.timeout, '--timeout', POSITIVE)
  if (values.controller === true) {
    if (values.node !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', 'start takes one of --node NODE or --controller')
    const r = await startController(loadLab(resolveLabName(values.lab)), { timeoutMs })
    process.stdout.write(`controller started (pid ${String(r.newPid)})\n`)
    return 0
  }
  const node = required(values.node, '--node')
  const r = await startAgent(loadLab(resolveLabName(values.lab)), { node, timeoutMs })
  process.stdout.write(`agent of node ${node} started (pid ${String(r.newPid)})\n`)
  return 0
}

function signalOf (given: string | undefined): 'KILL' | 'TERM' {
  const signal = (given ?? 'KILL').toUpperCase().replace(/^SIG/, '')
  if (signal !== 'KILL' && signal !== 'TERM') throw ferryError('FERRY_ERR_INVALID_ARG', `--signal must be KILL or TERM, not "${String(given)}"`)
  return signal
}

async function list (argv: string[]): Promise<number> {
  parseArgs({ args: argv, options: {} })
  for (const name of listLabs()) process.stdout.write(`${name}\n`)
  return 0
}

async function exec (argv: string[]): Promise<number> {
  const dash = argv.indexOf('--')
  const own = dash < 0 ? argv : argv.slice(0, dash)
  const cmd = dash < 0 ? [] : argv.slice(dash + 1)
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: {
      lab: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      container: { type: 'string', short: 'c' },
      node: { type: 'string' },
      underlay: { type: 'boolean' }
    }
  })
  requireRoot('ferry lab exec')
  const state = loadLab(resolveLabName(values.lab))
  let target: ExecTarget
  if (values.underlay === true) target = { kind: 'underlay' }
  else if (values.node !== undefined) target = { kind: 'node', name: values.node }
  else target = { kind: 'pod', namespace: values.namespace ?? DEFAULT_NAMESPACE, name: required(one(positionals, 'POD'), 'POD'), container: values.container }
  if (target.kind !== 'pod' && positionals.length > 0) throw ferryError('FERRY_ERR_INVALID_ARG', `unexpected ${positionals.join(' ')} (the command goes after --)`)
  return await labExec(state, target, cmd)
}

async function logs (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { lab: { type: 'string' }, namespace: { type: 'string', short: 'n' }, container: { type: 'string', short: 'c' }, node: { type: 'string' }, kubelet: { type: 'string' } }
  })
  const state = loadLab(resolveLabName(values.lab))
  const target: LogTarget = values.kubelet !== undefined
    ? { kind: 'kubelet', name: values.kubelet }
    : values.node !== undefined
      ? { kind: 'node', name: values.node }
      : { kind: 'pod', namespace: values.namespace ?? DEFAULT_NAMESPACE, name: required(one(positionals, 'POD'), 'POD'), container: values.container }
  const path = logPath(state, target)
  if (!existsSync(path)) {
    process.stderr.write(`ferry lab: no log yet (${path})\n`)
    return 0
  }
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(path)
    s.on('error', reject)
    s.on('end', resolve)
    s.pipe(process.stdout, { end: false })
  })
  return 0
}

function one (positionals: string[], what: string): string | undefined {
  if (positionals.length > 1) throw ferryError('FERRY_ERR_INVALID_ARG', `expected one ${what}, got ${positionals.join(' ')}`)
  return positionals[0]
}

function required (v: string | undefined, what: string): string {
  if (v === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `missing ${what} (see \`ferry lab --help\`)`)
  return v
}

