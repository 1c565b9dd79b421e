import { pathNormalizationOptions, type PathNormalizationOptions } from '../http/normalize-path'
import { isIP } from 'node:net'
import { isAbsolute, join, resolve } from 'node:path'
import { entrySettings, type CniEntrySettings } from '../cni/entry'
import { PATHS, PORTS } from '../config/env'
import { ferryError, isFerryError } from '../errors'
import { CERT_TTL, parseCertTtl } from '../identity/cert-ttl'
import { formatDuration, parseDuration } from '../identity/duration'
import { validateTrustDomain } from '../identity/spiffe-id'
import { parseCommandOptions } from '../config/cli-args'
import { isSocketFilePath, UNIX_PATH_MAX_BYTES } from '../native/unix-socket'
import { DEFAULT_CLUSTER_NAME } from '../telemetry/istio-labels'
import { clusterDomainProblem, clusterNameProblem, DEFAULT_CLUSTER_DOMAIN } from '../telemetry/cluster-names'
import { DEFAULT_SAMPLING_PERCENT, OTEL_ENV, parseTracingOptions, type TracingOptions } from '../telemetry/tracing/config'
import { DEFAULT_WORKERS_CAP, defaultWorkers, MAX_WORKERS, parseWorkerCount } from './worker-count'
import { httpLimitFlagSpecs, httpLimitsFromFlags, httpLimitUsage } from './http-limit-flags'
import type { HttpLimits } from '../http/options'

// `ferry agent` options: parsed strictly (unknown options and stray arguments are
// errors), validated once, frozen. The rest of the agent only sees AgentOptions.

export interface AgentOptions {
  /** This node's name: pods with spec.nodeName equal to it are ours. */
  readonly node: string
  /** Absolute path of the Kubernetes List the lab (or a syncer) keeps current; null with --kubernetes. */
  readonly clusterFile: string | null
  /** Discovery from the Kubernetes API and pods located the kubelet's way; null with --cluster-file. */
  readonly kubernetes: AgentKubernetesOptions | null
  /** On SIGTERM, how long live connections may take to finish before the agent exits anyway. */
  readonly drainGraceMs: number
  /** bpffs directory under which capture pins its maps and links. */
  readonly pinRoot: string
  /** Admin server (/metrics, /debug/pods) port on 0.0.0.0 in the node's netns; 0 picks one. */
  readonly adminPort: number
  /** Readiness server (/healthz/ready) port; 0 picks one. */
  readonly readyPort: number
  readonly logLevel: string
  /** --cluster-name: source_cluster / destination_cluster of Istio's metrics (Istio's default "Kubernetes"). */
  readonly clusterName: string
  /** --cluster-domain: the Services' DNS domain, in destination_service (name.namespace.svc.DOMAIN; default cluster.local). */
  readonly clusterDomain: string
  /** Directory of configuration documents (policies, routes, rate limits), watched; null: none (allow all). */
  readonly configDir: string | null
  /** --config-source controller: policies from the controller's configuration stream (needs the CA options). */
  readonly configFromController: boolean
  /** Where the last good configuration is kept across restarts (--config-cache); null: not kept. */
  readonly configCache: string | null
  /** Workload certificates from a CA; null: the agent runs without identities. */
  readonly identity: AgentIdentityOptions | null
  /** --sockmap on|off: plaintext pod <-> proxy hops bypass TCP (bpf/sk_msg.bpf.c). */
  readonly sockmap: boolean
  /** --workers: how many threads carry the data path (src/agent/worker-count.ts picks the default). */
  readonly workers: number
  /** A file holding the bearer token that opens /debug/* (src/agent/admin-auth.ts); null: none (with --kubernetes, RBAC decides). */
  readonly adminTokenFile: string | null
  /**
   * --kubelet-cgroup: the kubelet's cgroup v2 directory (an absolute path), or
   * KUBELET_CGROUP_AUTO (found under --host-proc; needs --kubernetes); null: no probe
   * admission (the kubelet's probes are plaintext like any other, refused by STRICT pods).
   */
  readonly kubeletCgroup: string | null
  /** The ferry-cni plugin's agent side (--cni-*); null: pods are enrolled from discovery only. */
  readonly cni: AgentCniOptions | null
  /**
   * --handoff-socket: the unix socket where this agent takes over the listening sockets
   * of the agent before it (at start) and offers its own to the next (src/handoff/);
   * null: no handoff, every start binds its ports afresh.
   */
  readonly handoffSocket: string | null
  /**
   * --otlp-endpoint / --otlp-protocol / --trace-sampling, or OpenTelemetry's
   * OTEL_EXPORTER_OTLP_* variables (the flags win): where the proxy's spans are exported
   * and which share of new traces is sampled (docs/tracing.md); null: tracing off (the
   * proxy only adds x-request-id).
   */
  readonly tracing: TracingOptions | null
  /** --path-normalization / --path-escaped-slashes: how L7 request paths are normalized at the destination (src/http/normalize-path.ts). */
  readonly pathNormalization: PathNormalizationOptions
  /** --http-*: the L7 engine's limits on what clients may send (src/http/options.ts; src/agent/http-limit-flags.ts). */
  readonly httpLimits: HttpLimits
}

export interface AgentCniOptions {
  /** The socket the agent serves, the state file it keeps, and the rest of Ferry's entry in the CNI configuration. */
  readonly entry: CniEntrySettings
  /** The node's CNI configuration directory, in which the agent keeps Ferry's entry; null: not kept. */
  readonly confDir: string | null
  /** Where the plugin binary was installed (removed with the entry on uninstall); null: not removed. */
  readonly binDir: string | null
  /** The agent's DaemonSet: a SIGTERM while it is being deleted uninstalls the plugin (--kubernetes only). */
  readonly daemonSet: { readonly namespace: string, readonly name: string } | null
}

export interface AgentKubernetesOptions {
  /** A kubeconfig file; null: in-cluster (the pod's service account), else $KUBECONFIG or ~/.kube/config. */
  readonly kubeconfig: string | null
  /** The host's procfs, where pod processes and their network namespaces are found. */
  readonly hostProc: string
  /** The host's cgroup mount (its cgroup v2 part on a hybrid host), where pod cgroups are found. */
  readonly cgroupRoot: string
}

export interface AgentIdentityOptions {
  /** host:port of the controller (or any IstioCertificateService CA). */
  readonly caAddress: string
  /** PEM file of the roots the CA's serving certificate must chain to. */
  readonly caRoot: string
  /** File holding this node's bearer token; re-read for every request (tokens rotate). */
  readonly caTokenFile: string
  /** SPIFFE IDs are spiffe://<trustDomain>/ns/<namespace>/sa/<service account>. */
  readonly trustDomain: string
  /** Certificate lifetime to ask for (the CA may grant less). */
  readonly certTtlMs: number
  /** The tunnel server's port, on [::] in the node's netns (0 picks one: tests). Peers are dialled on PORTS.tunnel. */
  readonly tunnelPort: number
}

/** The DaemonSet's host mounts (daemonset/base/agent.yaml). */
export const KUBERNETES_DEFAULTS = Object.freeze({ hostProc: '/host/proc', cgroupRoot: '/host/sys/fs/cgroup', configCache: join(PATHS.agentStateDir, 'config-cache.json') })
/** Below the DaemonSet's terminationGracePeriodSeconds (30 s), so the agent exits before the kubelet's SIGKILL. */
export const DRAIN_GRACE_DEFAULT_MS = 25_000
export const DRAIN_GRACE_MAX_MS = 3_600_000
/** The downward-API variable the DaemonSet sets to spec.nodeName. */
export const NODE_NAME_ENV = 'NODE_NAME'
/** The downward-API variable the DaemonSet sets to metadata.namespace (the namespace of --cni-daemonset). */
export const POD_NAMESPACE_ENV = 'POD_NAMESPACE'
export const IDENTITY_DEFAULTS = Object.freeze({ trustDomain: 'cluster.local', certTtlMs: CERT_TTL.defaultMs })
/** --kubelet-cgroup's value that finds the kubelet's process and reads its cgroup. */
export const KUBELET_CGROUP_AUTO = 'auto'
/** Given all together or not at all. */
const CA_OPTIONS = ['--ca-address', '--ca-root', '--ca-token-file'] as const

export const AGENT_USAGE = `usage: ferry agent --node NAME (--cluster-file PATH | --kubernetes [--kubeconfig FILE]
                     [--host-proc ${KUBERNETES_DEFAULTS.hostProc}] [--cgroup-root ${KUBERNETES_DEFAULTS.cgroupRoot}])
                   --pin-root DIR [--kubelet-cgroup PATH|${KUBELET_CGROUP_AUTO}]
                   [--admin-port ${PORTS.admin}] [--ready-port ${PORTS.ready}] [--admin-token-file FILE] [--log-level info]
                   [--cluster-name ${DEFAULT_CLUSTER_NAME}] [--cluster-domain ${DEFAULT_CLUSTER_DOMAIN}]
                   [--config-dir DIR | --config-source controller] [--config-cache PATH|none]
                   [--drain-grace ${formatDuration(DRAIN_GRACE_DEFAULT_MS)}]
                   [--ca-address HOST:PORT --ca-root FILE --ca-token-file FILE
                    [--trust-domain ${IDENTITY_DEFAULTS.trustDomain}] [--cert-ttl ${formatDuration(IDENTITY_DEFAULTS.certTtlMs)}]
                    [--tunnel-port ${PORTS.tunnel}]]
                   [--cni-socket PATH --cni-state-file PATH [--cni-timeout 30s] [--cni-log-file PATH]
                    [--cni-conf-dir DIR [--cni-bin-dir DIR] [--cni-daemonset NAME]]]
                   [--handoff-socket PATH]
                   [--otlp-endpoint URL [--otlp-protocol grpc|http/protobuf] [--trace-sampling ${DEFAULT_SAMPLING_PERCENT}]]
                   [--http-LIMIT VALUE ...]

Runs the per-node agent in the node's network namespace: watches the cluster (a
cluster file, or the Kubernetes API), enrolls this node's meshed pods in capture and
proxies their TCP connections. On SIGTERM it drains: it stops accepting connections,
reports not ready, lets live connections finish for up to --drain-grace, resets (and
counts) those still open then, and exits (its pins stay, so capture keeps steering for
the next agent; a second signal exits at once).

With a CA (the three --ca-* options, all or none), the agent also holds a certificate
for each identity (spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT) of its
enrolled pods, renewed at half its lifetime, and is not ready until it has them all;
it carries pod-to-pod traffic between nodes in an mTLS tunnel (HTTP/2 CONNECT, port
${PORTS.tunnel}) and refuses plaintext from outside the mesh to STRICT pods (the default;
label a namespace or annotate a pod ferry.dev/inbound-mode: PERMISSIVE to accept it).
Without a CA, traffic is plaintext and every pod accepts it, as before.
  --node            this node's name; default: $${NODE_NAME_ENV} (the DaemonSet sets it)
  --cluster-file    a Kubernetes v1 List kept current by the lab (file discovery,
                    pods located by the lab's annotations)
  --kubernetes      discovery from the Kubernetes API (list + watch of pods, services,
                    namespaces) and pods located the kubelet's way: the pod cgroup
                    under --cgroup-root, the network namespace of a pod process
                    under --host-proc
  --kubeconfig      the API server and credentials (default: in-cluster, else
                    $KUBECONFIG or ~/.kube/config)
  --drain-grace     on SIGTERM, how long live connections may take to finish; those
                    still open then are reset, and counted
                    (ferry_drain_closed_connections_total)
  --admin-token-file
                    a file holding the bearer token that opens the admin port's
                    /debug/* endpoints (re-read when it changes); with --kubernetes,
                    a Kubernetes token whose user RBAC allows \`get\` on agents/debug
                    (ferry.dev) opens them too. Without either they are closed.
                    /metrics and readiness need no token
  --cluster-name    the cluster's name in Istio's metrics (source_cluster,
                    destination_cluster; docs/metrics.md); default ${DEFAULT_CLUSTER_NAME}, Istio's
  --cluster-domain  the cluster's DNS domain (the kubelet's --cluster-domain):
                    destination_service is NAME.NAMESPACE.svc.DOMAIN; default ${DEFAULT_CLUSTER_DOMAIN}
  --config-dir      a directory of configuration documents (AuthorizationPolicy,
                    PeerAuthentication, HTTPRoute, GRPCRoute, VirtualService,
                    DestinationRule, RateLimit), watched and applied live (absent: allow all)
  --config-source   controller: the same documents from the controller's
                    configuration stream (on the CA's address; excludes --config-dir)
  --config-cache    a file where the agent keeps its last good configuration, so
                    that after a restart it enforces it at once (the controller may be
                    down) instead of denying every connection; "none" keeps none.
                    Default with --kubernetes: ${KUBERNETES_DEFAULTS.configCache}; else none
  --ca-address      the controller, e.g. 172.30.0.254:${PORTS.ca}
  --ca-root         PEM root(s) the controller's serving certificate must chain to
  --ca-token-file   this node's bearer token, re-read for every request
  --cert-ttl        certificate lifetime to ask for (e.g. 24h, 30m, 6s)
  --tunnel-port     where this node's tunnel server listens (0: any free port)
  --sockmap         on (default) | off: pass the plaintext hops between pods and
                    the proxy through sockmap instead of TCP
  --path-normalization  NONE | BASE | MERGE_SLASHES (default) | DECODE_AND_MERGE_SLASHES:
                    how an L7 request's path is normalized before authorization and
                    forwarding (Istio's meshConfig pathNormalization; docs/policy.md)
  --path-escaped-slashes  KEEP_UNCHANGED (default) | REJECT_REQUEST |
                    UNESCAPE_AND_REDIRECT (refused: 400) | UNESCAPE_AND_FORWARD: %2F and %5C
  --workers         how many worker threads carry the connections (1-${MAX_WORKERS});
                    default: the CPUs the agent's cgroup may use, at most ${DEFAULT_WORKERS_CAP}
  --kubelet-cgroup  the kubelet's cgroup v2 directory (e.g.
                    /host/sys/fs/cgroup/system.slice/kubelet.service), or "auto"
                    (with --kubernetes: the cgroup of the process named kubelet under
                    --host-proc, under --cgroup-root): connections the kubelet makes
                    to the ports a pod's probes name reach the pod directly, even when
                    it is STRICT; nothing else from the node does. Absent: no probe
                    admission
  --handoff-socket  a unix socket (mode 0600, in a directory only root may write)
                    through which a new agent of this node takes over this agent's
                    listening sockets — pods' listeners, the tunnel, the admin and
                    readiness ports, the CNI socket — so an upgrade refuses no
                    connection: the new agent starts beside this one, takes them,
                    and once it is ready this one stops accepting and drains. At
                    start the agent takes over from whoever listens there (nobody:
                    a fresh start), then listens there itself

Tracing (docs/tracing.md): the proxy reads and forwards W3C trace context and B3, and
for each request it handles at L7 makes a client span (source node) and a server span
(destination node), exported over OTLP by one exporter per agent.
  --otlp-endpoint   the collector: http://HOST:4317 for grpc, http://HOST:4318 for
                    http/protobuf (/v1/traces is appended); default
                    $${OTEL_ENV.tracesEndpoint} (used as is), else
                    $${OTEL_ENV.endpoint}. Neither: tracing is off, and the
                    proxy only adds x-request-id
  --otlp-protocol   grpc (default) or http/protobuf; default $${OTEL_ENV.tracesProtocol},
                    else $${OTEL_ENV.protocol}
  --trace-sampling  the percentage (0-100) of new traces sampled; a request's own
                    decision always wins. Default $${OTEL_ENV.samplerArg} (a ratio,
                    0-1) as a percentage, else ${DEFAULT_SAMPLING_PERCENT}

HTTP limits (docs/l7.md): what a client of the L7 engine may send before its
connection is refused, counted in ferry_http_refused_total{reason}; counts are
integers, times durations (defaults: Envoy's, src/http/options.ts).
${httpLimitUsage()}

With the ferry-cni plugin (docs/install.md), a meshed pod is enrolled before its
containers start: the plugin asks the agent on --cni-socket, and the agent enrolls the
pod before it answers.
  --cni-socket      the unix socket the plugin reaches the agent on (mode 0600)
  --cni-state-file  the file the plugin decides from (meshed namespaces, pods' opt-in
                    and opt-out), rewritten whenever they change
  --cni-timeout     how long the plugin waits for a meshed pod's enrollment (in
                    Ferry's entry in the CNI configuration; default 30s)
  --cni-log-file    the plugin's log file (in Ferry's entry; default none)
  --cni-conf-dir    the node's CNI configuration directory: Ferry's entry is kept
                    after the primary plugin, re-inserted when the primary rewrites it
  --cni-bin-dir     where the plugin binary is installed (removed on uninstall)
  --cni-daemonset   this agent's DaemonSet (in $${POD_NAMESPACE_ENV}): on SIGTERM while it is
                    being deleted, the agent uninstalls the plugin (--kubernetes only)
`

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
// RFC 1123 subdomain, as Kubernetes requires of node names.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/** `env` supplies NODE_NAME when --node is absent (tests pass their own). */
export function parseAgentOptions (argv: string[], env: Readonly<Record<string, string | undefined>> = process.env): AgentOptions {
  const values = parseCommandOptions('agent', argv, {
    node: { type: 'string' },
    'cluster-file': { type: 'string' },
    kubernetes: { type: 'boolean' },
    kubeconfig: { type: 'string' },
    'host-proc': { type: 'string' },
    'cgroup-root': { type: 'string' },
    'drain-grace': { type: 'string' },
    'pin-root': { type: 'string' },
    'admin-port': { type: 'string' },
    'ready-port': { type: 'string' },
    'admin-token-file': { type: 'string' },
    'log-level': { type: 'string' },
    'cluster-name': { type: 'string' },
    'cluster-domain': { type: 'string' },
    'config-dir': { type: 'string' },
    'config-source': { type: 'string' },
    'config-cache': { type: 'string' },
    'ca-address': { type: 'string' },
    'ca-root': { type: 'string' },
    'ca-token-file': { type: 'string' },
    'trust-domain': { type: 'string' },
    'cert-ttl': { type: 'string' },
    'tunnel-port': { type: 'string' },
    sockmap: { type: 'string' },
    workers: { type: 'string' },
    'kubelet-cgroup': { type: 'string' },
    'cni-socket': { type: 'string' },
    'cni-state-file': { type: 'string' },
    'cni-timeout': { type: 'string' },
    'cni-log-file': { type: 'string' },
    'cni-conf-dir': { type: 'string' },
    'cni-bin-dir': { type: 'string' },
    'cni-daemonset': { type: 'string' },
    'handoff-socket': { type: 'string' },
    'otlp-endpoint': { type: 'string' },
    'otlp-protocol': { type: 'string' },
    'trace-sampling': { type: 'string' },
    'path-normalization': { type: 'string' },
    'path-escaped-slashes': { type: 'string' },
    ...httpLimitFlagSpecs()
  })
  const node = values.node ?? env[NODE_NAME_ENV]
  if (node === undefined || node === '') throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --node is required (or $${NODE_NAME_ENV})\n\n${AGENT_USAGE}`)
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
  const clusterName = (values['cluster-name'] as string | undefined) ?? DEFAULT_CLUSTER_NAME
  const nameProblem = clusterNameProblem(clusterName)
  if (nameProblem !== null) throw invalid('--cluster-name', clusterName, nameProblem)
  const clusterDomain = (values['cluster-domain'] as string | undefined) ?? DEFAULT_CLUSTER_DOMAIN
  const domainProblem = clusterDomainProblem(clusterDomain)
  if (domainProblem !== null) throw invalid('--cluster-domain', clusterDomain, domainProblem)
  const kubernetes = kubernetesOptions(values)
  const grace = values['drain-grace']
  const drainGraceMs = typeof grace === 'string' ? parseDuration(grace, 'ferry agent: --drain-grace', { maxMs: DRAIN_GRACE_MAX_MS }) : DRAIN_GRACE_DEFAULT_MS
  const configDir = values['config-dir'] === undefined ? null : resolve(values['config-dir'] as string)
  const identity = identityOptions(values)
  const configSource = values['config-source']
  if (configSource !== undefined && configSource !== 'controller') throw invalid('--config-source', String(configSource), '"controller" (a directory is given with --config-dir)')
  const configFromController = configSource === 'controller'
  const sockmap = values.sockmap ?? 'on'
  if (sockmap !== 'on' && sockmap !== 'off') throw invalid('--sockmap', String(sockmap), '"on" or "off"')
  const workers = workersOption(values.workers)
  const kubeletCgroup = kubeletCgroupOption(values['kubelet-cgroup'], kubernetes)
  if (configFromController && configDir !== null) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --config-source controller and --config-dir exclude each other')
  if (configFromController && identity === null) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --config-source controller needs the CA options (${CA_OPTIONS.join(', ')}): the stream uses the same controller, root and token`)
  const configCache = configCacheOption(values['config-cache'], configDir !== null || configFromController, kubernetes !== null)
  return Object.freeze({
    node,
    clusterFile: kubernetes === null ? resolve(required(values['cluster-file'], '--cluster-file')) : null,
    kubernetes,
    drainGraceMs,
    pinRoot,
    adminPort,
    readyPort,
    logLevel,
    clusterName,
    clusterDomain,
    configDir,
    configFromController,
    configCache,
    identity,
    sockmap: sockmap === 'on',
    workers,
    adminTokenFile: values['admin-token-file'] === undefined ? null : resolve(values['admin-token-file'] as string),
    kubeletCgroup,
    cni: cniOptions(values, kubernetes !== null, env),
    handoffSocket: handoffSocketOption(values['handoff-socket']),
    tracing: parseTracingOptions({
      endpoint: values['otlp-endpoint'] as string | undefined,
      protocol: values['otlp-protocol'] as string | undefined,
      sampling: values['trace-sampling'] as string | undefined
    }, env),
    pathNormalization: pathNormalizationOption(values['path-normalization'], values['path-escaped-slashes']),
    httpLimits: httpLimitsFromFlags(values)
  })
}

function pathNormalizationOption (normalization: string | boolean | undefined, escapedSlashes: string | boolean | undefined): PathNormalizationOptions {
  try {
    return pathNormalizationOptions({
      ...(normalization === undefined ? {} : { normalization }),
      ...(escapedSlashes === undefined ? {} : { escapedSlashes })
    })
  } catch (err) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --path-normalization / --path-escaped-slashes: ${(err as Error).message}`, { cause: err })
  }
}

/** An absolute path that fits a unix socket address; null when absent. */
function handoffSocketOption (value: string | boolean | undefined): string | null {
  if (value === undefined) return null
  if (!isSocketFilePath(value)) {
    throw invalid('--handoff-socket', String(value), `an absolute file path of at most ${UNIX_PATH_MAX_BYTES} bytes (a unix socket address)`)
  }
  return resolve(value)
}

/** An absolute path, or "auto" with --kubernetes (whose --host-proc and --cgroup-root it reads). */
function kubeletCgroupOption (value: string | boolean | undefined, kubernetes: AgentKubernetesOptions | null): string | null {
  if (value === undefined) return null
  if (value === KUBELET_CGROUP_AUTO) {
    if (kubernetes === null) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --kubelet-cgroup ${KUBELET_CGROUP_AUTO} needs --kubernetes (it finds the kubelet under --host-proc); give the kubelet's cgroup directory instead`)
    return KUBELET_CGROUP_AUTO
  }
  if (typeof value !== 'string' || !isAbsolute(value)) throw invalid('--kubelet-cgroup', String(value), `the kubelet's cgroup v2 directory (an absolute path), or "${KUBELET_CGROUP_AUTO}"`)
  return resolve(value)
}

const CNI_FLAGS = ['--cni-socket', '--cni-state-file', '--cni-timeout', '--cni-log-file', '--cni-conf-dir', '--cni-bin-dir', '--cni-daemonset'] as const
// A Kubernetes object name (DNS subdomain).
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/

/** --cni-socket and --cni-state-file together or not at all; the others only with them. */
function cniOptions (values: Record<string, string | boolean | undefined>, kubernetes: boolean, env: Readonly<Record<string, string | undefined>>): AgentCniOptions | null {
  const given = CNI_FLAGS.filter((o) => values[o.slice(2)] !== undefined)
  if (given.length === 0) return null
  if (values['cni-socket'] === undefined || values['cni-state-file'] === undefined) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${given.join(', ')} need${given.length === 1 ? 's' : ''} --cni-socket and --cni-state-file (the plugin's socket and state file go together)`)
  }
  const entry = entrySettings({
    socket: values['cni-socket'] as string,
    stateFile: values['cni-state-file'] as string,
    timeout: values['cni-timeout'] as string | undefined,
    logFile: values['cni-log-file'] as string | undefined
  }, (name) => `--cni-${name}`, 'agent')
  const dir = (name: '--cni-conf-dir' | '--cni-bin-dir'): string | null => {
    const v = values[name.slice(2)]
    if (v === undefined) return null
    if (typeof v !== 'string' || !isAbsolute(v)) throw invalid(name, String(v), 'an absolute path')
    return v
  }
  const confDir = dir('--cni-conf-dir')
  const binDir = dir('--cni-bin-dir')
  if (binDir !== null && confDir === null) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --cni-bin-dir needs --cni-conf-dir (the binary is removed together with the entry)')
  const name = values['cni-daemonset']
  let daemonSet: AgentCniOptions['daemonSet'] = null
  if (name !== undefined) {
    if (!kubernetes) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --cni-daemonset needs --kubernetes (the DaemonSet is read from the API server)')
    if (confDir === null) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --cni-daemonset needs --cni-conf-dir (what to uninstall from)')
    if (typeof name !== 'string' || !OBJECT_NAME.test(name)) throw invalid('--cni-daemonset', String(name), 'a DaemonSet name')
    const namespace = env[POD_NAMESPACE_ENV]
    if (namespace === undefined || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --cni-daemonset needs $${POD_NAMESPACE_ENV}, the agent's namespace (the DaemonSet sets it from metadata.namespace)`)
    }
    daemonSet = Object.freeze({ namespace, name })
  }
  return Object.freeze({ entry, confDir, binDir, daemonSet })
}

/** --config-cache: a path, "none", or the DaemonSet's default (with --kubernetes and a configuration source). */
function configCacheOption (value: string | boolean | undefined, hasSource: boolean, kubernetes: boolean): string | null {
  if (value === undefined) return hasSource && kubernetes ? KUBERNETES_DEFAULTS.configCache : null
  if (value === 'none') return null
  if (typeof value !== 'string' || value === '' || value.endsWith('/')) throw invalid('--config-cache', String(value), 'a file path, or "none"')
  if (!hasSource) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --config-cache needs a configuration source (--config-dir or --config-source controller)')
  return resolve(value)
}

/** --cluster-file or --kubernetes, exactly one; the kubelet locator's options only with --kubernetes. */
function kubernetesOptions (values: Record<string, string | boolean | undefined>): AgentKubernetesOptions | null {
  const file = values['cluster-file'] !== undefined
  if (values.kubernetes === true && file) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry agent: --cluster-file and --kubernetes are mutually exclusive (a cluster file, or the Kubernetes API)')
  if (values.kubernetes !== true) {
    for (const o of ['--kubeconfig', '--host-proc', '--cgroup-root']) {
      if (values[o.slice(2)] !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${o} needs --kubernetes`)
    }
    if (!file) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: --cluster-file or --kubernetes is required\n\n${AGENT_USAGE}`)
    return null
  }
  const path = (name: string, fallback: string): string => {
    const v = values[name.slice(2)]
    if (v === undefined) return fallback
    if (typeof v !== 'string' || !isAbsolute(v)) throw invalid(name, String(v), 'an absolute path')
    return v
  }
  const kubeconfig = values.kubeconfig
  return Object.freeze({
    kubeconfig: typeof kubeconfig === 'string' && kubeconfig !== '' ? resolve(kubeconfig) : null,
    hostProc: path('--host-proc', KUBERNETES_DEFAULTS.hostProc),
    cgroupRoot: path('--cgroup-root', KUBERNETES_DEFAULTS.cgroupRoot)
  })
}

function identityOptions (values: Record<string, string | boolean | undefined>): AgentIdentityOptions | null {
  const given = CA_OPTIONS.filter((o) => values[o.slice(2)] !== undefined)
  if (given.length === 0) {
    for (const o of ['--trust-domain', '--cert-ttl', '--tunnel-port']) {
      if (values[o.slice(2)] !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${o} needs a CA (${CA_OPTIONS.join(', ')})`)
    }
    return null
  }
  if (given.length < CA_OPTIONS.length) {
    const missing = CA_OPTIONS.filter((o) => !given.includes(o))
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${given.join(', ')} also need${given.length === 1 ? 's' : ''} ${missing.join(' and ')} (the CA options go together)`)
  }
  const caAddress = required(values['ca-address'], '--ca-address')
  if (!isHostPort(caAddress)) throw invalid('--ca-address', caAddress, 'HOST:PORT, e.g. 172.30.0.254:15012 or [fd30::fe]:15012')
  const caRoot = resolve(required(values['ca-root'], '--ca-root'))
  const caTokenFile = resolve(required(values['ca-token-file'], '--ca-token-file'))
  const trustDomain = typeof values['trust-domain'] === 'string' ? values['trust-domain'] : IDENTITY_DEFAULTS.trustDomain
  try {
    validateTrustDomain(trustDomain)
  } catch (err) {
    if (isFerryError(err)) throw invalid('--trust-domain', trustDomain, `a trust domain name (${err.message})`)
    throw err
  }
  const ttl = values['cert-ttl']
  const certTtlMs = typeof ttl === 'string' ? parseCertTtl(ttl, 'ferry agent: --cert-ttl') : IDENTITY_DEFAULTS.certTtlMs
  const tunnelPort = port(values['tunnel-port'], '--tunnel-port', PORTS.tunnel)
  return Object.freeze({ caAddress, caRoot, caTokenFile, trustDomain, certTtlMs, tunnelPort })
}

/** "host:port", "1.2.3.4:port" or "[v6]:port", with a port 1-65535. */
function isHostPort (text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text)
  if (m === null) return false
  const port = Number(m[3])
  return port >= 1 && port <= 65535 && (m[1] === undefined || isIP(m[1]) === 6)
}

function required (value: string | boolean | undefined, name: string): string {
  if (typeof value !== 'string' || value === '') throw ferryError('FERRY_ERR_INVALID_ARG', `ferry agent: ${name} is required\n\n${AGENT_USAGE}`)
  return value
}

function workersOption (value: string | boolean | undefined): number {
  if (value === undefined) return defaultWorkers()
  return parseWorkerCount(String(value), 'ferry agent: --workers')
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
