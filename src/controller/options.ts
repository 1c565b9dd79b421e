import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { PORTS } from '../config/env'
import { ferryError, isFerryError } from '../errors'
import { CERT_TTL, parseCertTtl } from '../identity/cert-ttl'
import { formatDuration } from '../identity/duration'
import { validateTrustDomain } from '../identity/spiffe-id'
import { parseCommandOptions } from '../config/cli-args'

// `ferry controller` options: parsed strictly (unknown options and stray arguments are
// errors), validated once, frozen. The rest of the controller only sees ControllerOptions.

export interface ControllerOptions {
  /** Holds the CA root key and certificate (created on first start). */
  readonly dataDir: string
  /** Where the last configuration version served is saved (config-state.json); --data-dir unless given. */
  readonly stateDir: string
  readonly listen: { readonly host: string, readonly port: number }
  readonly trustDomain: string
  /** Longest workload certificate lifetime, and the one given when a request names none. */
  readonly certTtlMs: number
  /** The lab's node credentials (token → node), see lab-node-tokens.ts; null with --kubernetes. */
  readonly labNodesFile: string | null
  /** Kubernetes v1 List of pods: which pods run on which node (the lab's cluster.json); null with --kubernetes. */
  readonly clusterFile: string | null
  /** On a cluster: TokenReview for agents' tokens, pods and policies from the API server; null in the lab. */
  readonly kubernetes: KubernetesControllerOptions | null
  /** Policies served on the configuration stream from this directory (instead of the API server's). */
  readonly configDir: string | null
  /** Policies in this namespace apply to the whole mesh. */
  readonly rootNamespace: string
  /** DNS names and IPs in the controller's serving certificate: what agents dial. */
  readonly servingNames: readonly string[]
  readonly logLevel: string
}

export interface KubernetesControllerOptions {
  /** A kubeconfig file; null: in-cluster (the pod's service account), else $KUBECONFIG or ~/.kube/config. */
  readonly kubeconfig: string | null
  /** The audience agents' projected tokens are made for, and TokenReviews ask about. */
  readonly tokenAudience: string
  /** The agents' service account; namespace null: the controller's own namespace (in a pod), else ferry-system. */
  readonly agentServiceAccount: { readonly namespace: string | null, readonly name: string }
}

export const CONTROLLER_DEFAULTS = Object.freeze({
  listen: `127.0.0.1:${PORTS.ca}`,
  trustDomain: 'cluster.local',
  certTtlMs: CERT_TTL.defaultMs,
  /** Names always in the serving certificate, besides the listen address. */
  servingNames: Object.freeze(['localhost', 'ferry-controller', 'ferry-controller.ferry-system.svc']),
  tokenAudience: 'ferry-ca',
  agentServiceAccount: 'ferry-agent',
  rootNamespace: 'ferry-system'
})

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export const CONTROLLER_USAGE = `usage: ferry controller --data-dir DIR --lab-nodes FILE --cluster-file FILE [--config-dir DIR]
       ferry controller --data-dir DIR --kubernetes [--kubeconfig FILE] [--config-dir DIR]
                        [--token-audience ${CONTROLLER_DEFAULTS.tokenAudience}] [--agent-service-account [NAMESPACE:]NAME]
   both:                [--listen ${CONTROLLER_DEFAULTS.listen}] [--trust-domain ${CONTROLLER_DEFAULTS.trustDomain}]
                        [--cert-ttl ${formatDuration(CONTROLLER_DEFAULTS.certTtlMs)}] [--serving-name NAME]...
                        [--root-namespace ${CONTROLLER_DEFAULTS.rootNamespace}] [--state-dir DIR] [--log-level info]

Runs the mesh's controller: a gRPC server (TLS) speaking Istio's
istio.v1.auth.IstioCertificateService/CreateCertificate, Ferry's TrustBundleService and
Ferry's ConfigService (the configuration stream to agents). It signs workload
certificates (SPIFFE X.509 SVIDs) only for identities of pods scheduled on the caller's
node. The root key and certificate live in --data-dir (root-key.pem 0600, root-cert.pem:
give this one to agents).

In the lab, agents authenticate with a node token from --lab-nodes and pods come from
--cluster-file. With --kubernetes, agents present their projected service-account token,
checked with a TokenReview; pods, and the AuthorizationPolicy, PeerAuthentication and
RateLimit objects (security.ferry.dev, security.istio.io) and the routes (HTTPRoute,
GRPCRoute of gateway.networking.k8s.io; VirtualService, DestinationRule of
networking.istio.io) come from the API server.

  --config-dir      serve the policies of this directory (watched) on the configuration
                    stream; with --kubernetes it replaces the API server's policies
  --state-dir       where the last configuration served is saved and read back at start
                    (config-state.json; default: --data-dir). It is served until the feed
                    has read the current state, and keeps each object's last valid version
  --kubeconfig      with --kubernetes: a kubeconfig file (default: in-cluster)
  --token-audience  with --kubernetes: the audience of agents' tokens
  --agent-service-account  with --kubernetes: the agents' service account
                    (default ${CONTROLLER_DEFAULTS.agentServiceAccount} in the controller's own namespace)
  --cert-ttl        longest certificate lifetime (e.g. 24h, 30m, 30s); requests get at most this
  --serving-name    a DNS name or IP agents dial; repeatable (the listen host, localhost and
                    ferry-controller[.ferry-system.svc] are always included)
`

export function parseControllerOptions (argv: string[]): ControllerOptions {
  const values = parseCommandOptions('controller', argv, {
    'data-dir': { type: 'string' },
    listen: { type: 'string' },
    'trust-domain': { type: 'string' },
    'cert-ttl': { type: 'string' },
    'lab-nodes': { type: 'string' },
    'cluster-file': { type: 'string' },
    kubernetes: { type: 'boolean' },
    kubeconfig: { type: 'string' },
    'token-audience': { type: 'string' },
    'agent-service-account': { type: 'string' },
    'config-dir': { type: 'string' },
    'root-namespace': { type: 'string' },
    'state-dir': { type: 'string' },
    'serving-name': { type: 'string', multiple: true },
    'log-level': { type: 'string' }
  })
  const dataDir = resolve(required(values['data-dir'], '--data-dir'))
  const stateDirValue = optional(values['state-dir'])
  const stateDir = stateDirValue === undefined ? dataDir : resolve(required(stateDirValue, '--state-dir'))
  let labNodesFile: string | null = null
  let clusterFile: string | null = null
  let kubernetes: KubernetesControllerOptions | null = null
  if (values.kubernetes === true) {
    for (const lab of ['lab-nodes', 'cluster-file'] as const) {
      if (values[lab] !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry controller: --${lab} is for the lab; with --kubernetes, agents' tokens are checked with a TokenReview and pods come from the API server`)
    }
    const audience = optional(values['token-audience']) ?? CONTROLLER_DEFAULTS.tokenAudience
    if (!/^[\x21-\x7e]{1,253}$/.test(audience)) throw invalid('--token-audience', audience, 'a non-empty audience without spaces')
    const kubeconfig = optional(values.kubeconfig)
    kubernetes = Object.freeze({
      kubeconfig: kubeconfig === undefined ? null : resolve(required(kubeconfig, '--kubeconfig')),
      tokenAudience: audience,
      agentServiceAccount: parseServiceAccount(optional(values['agent-service-account']) ?? CONTROLLER_DEFAULTS.agentServiceAccount)
    })
  } else {
    for (const k8s of ['kubeconfig', 'token-audience', 'agent-service-account'] as const) {
      if (values[k8s] !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry controller: --${k8s} needs --kubernetes`)
    }
    const labNodes = values['lab-nodes']
    if (labNodes === undefined) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `ferry controller: --lab-nodes is required without --kubernetes (the lab's agent credentials)\n\n${CONTROLLER_USAGE}`)
    }
    labNodesFile = resolve(required(labNodes, '--lab-nodes'))
    clusterFile = resolve(required(values['cluster-file'], '--cluster-file'))
  }
  const configDirValue = optional(values['config-dir'])
  const configDir = configDirValue === undefined ? null : resolve(required(configDirValue, '--config-dir'))
  const rootNamespace = optional(values['root-namespace']) ?? CONTROLLER_DEFAULTS.rootNamespace
  if (!DNS_LABEL.test(rootNamespace)) throw invalid('--root-namespace', rootNamespace, 'a namespace name (an RFC 1123 label)')
  const listen = parseListen(optional(values.listen) ?? CONTROLLER_DEFAULTS.listen)
  const trustDomain = optional(values['trust-domain']) ?? CONTROLLER_DEFAULTS.trustDomain
  try {
    validateTrustDomain(trustDomain)
  } catch (err) {
    if (isFerryError(err)) throw invalid('--trust-domain', trustDomain, `a trust domain name (${err.message})`)
    throw err
  }
  const ttl = optional(values['cert-ttl'])
  const certTtlMs = ttl === undefined ? CONTROLLER_DEFAULTS.certTtlMs : parseCertTtl(ttl, 'ferry controller: --cert-ttl')
  const extra = (values['serving-name'] as string[] | undefined) ?? []
  for (const name of extra) {
    if (isIP(name) === 0 && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) throw invalid('--serving-name', name, 'a DNS name or an IP address')
  }
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::'
  const servingNames = [...new Set([...(wildcard ? [] : [listen.host]), ...CONTROLLER_DEFAULTS.servingNames, ...extra])]
  const logLevel = optional(values['log-level']) ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw invalid('--log-level', logLevel, `one of ${LOG_LEVELS.join(', ')}`)
  return Object.freeze({ dataDir, stateDir, listen, trustDomain, certTtlMs, labNodesFile, clusterFile, kubernetes, configDir, rootNamespace, servingNames: Object.freeze(servingNames), logLevel })
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/** "ferry-agent" or "ferry-system:ferry-agent". */
function parseServiceAccount (text: string): { namespace: string | null, name: string } {
  const [a, b, ...rest] = text.split(':')
  const namespace = b === undefined ? null : a
  const name = b ?? a
  if (rest.length > 0 || (namespace !== null && !DNS_LABEL.test(namespace)) || !DNS_SUBDOMAIN.test(name) || name.length > 253) {
    throw invalid('--agent-service-account', text, 'NAME or NAMESPACE:NAME, e.g. ferry-system:ferry-agent')
  }
  return Object.freeze({ namespace, name })
}

/** "127.0.0.1:15012", "[::1]:15012", "localhost:0". */
export function parseListen (text: string): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text)
  const host = m?.[1] ?? m?.[2]
  const port = m === null ? NaN : Number(m[3])
  if (host === undefined || !(port >= 0 && port <= 65535) || (m?.[1] !== undefined && isIP(host) !== 6)) {
    throw invalid('--listen', text, 'HOST:PORT, e.g. 127.0.0.1:15012 or [::1]:15012 (port 0: any free port)')
  }
  return Object.freeze({ host, port })
}

function optional (value: string | string[] | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function required (value: string | string[] | boolean | undefined, name: string): string {
  if (typeof value !== 'string' || value === '') throw ferryError('FERRY_ERR_INVALID_ARG', `ferry controller: ${name} is required\n\n${CONTROLLER_USAGE}`)
  return value
}

function invalid (name: string, value: string, expected: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry controller: ${name} "${value}" is invalid: expected ${expected}`)
}
