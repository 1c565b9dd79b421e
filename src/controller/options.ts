import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { PORTS } from '../config/env'
import { ferryError, isFerryError } from '../errors'
import { formatDuration, parseDuration } from '../identity/duration'
import { validateTrustDomain } from '../identity/spiffe-id'
import { parseCommandOptions } from '../config/cli-args'

// `ferry controller` options: parsed strictly (unknown options and stray arguments are
// errors), validated once, frozen. The rest of the controller only sees ControllerOptions.

export interface ControllerOptions {
  /** Holds the CA root key and certificate (created on first start). */
  readonly dataDir: string
  readonly listen: { readonly host: string, readonly port: number }
  readonly trustDomain: string
  /** Longest workload certificate lifetime, and the one given when a request names none. */
  readonly certTtlMs: number
  /** The lab's node credentials (token → node), see lab-node-tokens.ts. */
  readonly labNodesFile: string
  /** Kubernetes v1 List of pods: which pods run on which node (the lab's cluster.json). */
  readonly clusterFile: string
  /** DNS names and IPs in the controller's serving certificate: what agents dial. */
  readonly servingNames: readonly string[]
  readonly logLevel: string
}

export const CONTROLLER_DEFAULTS = Object.freeze({
  listen: `127.0.0.1:${PORTS.ca}`,
  trustDomain: 'cluster.local',
  certTtlMs: 24 * 3_600_000,
  /** Names always in the serving certificate, besides the listen address. */
  servingNames: Object.freeze(['localhost', 'ferry-controller', 'ferry-controller.ferry-system.svc'])
})

const MIN_TTL_MS = 1000
const MAX_TTL_MS = 365 * 86_400_000
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export const CONTROLLER_USAGE = `usage: ferry controller --data-dir DIR --lab-nodes FILE --cluster-file FILE
                        [--listen ${CONTROLLER_DEFAULTS.listen}] [--trust-domain ${CONTROLLER_DEFAULTS.trustDomain}]
                        [--cert-ttl ${formatDuration(CONTROLLER_DEFAULTS.certTtlMs)}] [--serving-name NAME]... [--log-level info]

Runs the mesh's certificate authority: a gRPC server (TLS) speaking Istio's
istio.v1.auth.IstioCertificateService/CreateCertificate and Ferry's TrustBundleService.
It signs workload certificates (SPIFFE X.509 SVIDs) for agents that authenticate with a
node token from --lab-nodes, and only for identities of pods scheduled on the caller's
node according to --cluster-file. The root key and certificate live in --data-dir
(root-key.pem 0600, root-cert.pem: give this one to agents).

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
    'serving-name': { type: 'string', multiple: true },
    'log-level': { type: 'string' }
  })
  const dataDir = resolve(required(values['data-dir'], '--data-dir'))
  const labNodes = values['lab-nodes']
  if (labNodes === undefined) {
    throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry controller: --lab-nodes is required (the only agent authenticator so far; a Kubernetes TokenReview one will replace it)')
  }
  const labNodesFile = resolve(required(labNodes, '--lab-nodes'))
  const clusterFile = resolve(required(values['cluster-file'], '--cluster-file'))
  const listen = parseListen(optional(values.listen) ?? CONTROLLER_DEFAULTS.listen)
  const trustDomain = optional(values['trust-domain']) ?? CONTROLLER_DEFAULTS.trustDomain
  try {
    validateTrustDomain(trustDomain)
  } catch (err) {
    if (isFerryError(err)) throw invalid('--trust-domain', trustDomain, `a trust domain name (${err.message})`)
    throw err
  }
  const ttl = optional(values['cert-ttl'])
  const certTtlMs = ttl === undefined ? CONTROLLER_DEFAULTS.certTtlMs : parseDuration(ttl, 'ferry controller: --cert-ttl')
  if (certTtlMs < MIN_TTL_MS || certTtlMs > MAX_TTL_MS) throw invalid('--cert-ttl', String(ttl), 'a duration from 1s to 365d')
  const extra = (values['serving-name'] as string[] | undefined) ?? []
  for (const name of extra) {
    if (isIP(name) === 0 && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) throw invalid('--serving-name', name, 'a DNS name or an IP address')
  }
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::'
  const servingNames = [...new Set([...(wildcard ? [] : [listen.host]), ...CONTROLLER_DEFAULTS.servingNames, ...extra])]
  const logLevel = optional(values['log-level']) ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw invalid('--log-level', logLevel, `one of ${LOG_LEVELS.join(', ')}`)
  return Object.freeze({ dataDir, listen, trustDomain, certTtlMs, labNodesFile, clusterFile, servingNames: Object.freeze(servingNames), logLevel })
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
