import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { ClusterSnapshot } from '../discovery/model'
import { ferryError } from '../errors'
import { validateTrustDomain } from '../identity/spiffe-id'
import { compilePolicySet } from '../policy/policy-set'
import { explain } from '../policy/explain'
import { explanationText } from '../policy/explain-text'
import { POLICY_DEFAULTS } from '../policy/model'
import { resolveDestinations, resolveSource } from '../policy/subjects'
import { loadResourceDirectory } from '../resources/loader'
import { CONFIG_DEFAULTS } from '../resources/snapshot'

// `ferry policy …`: argument parsing and output only; the work is in src/policy/ and
// src/resources/.

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
  validate --dir DIR [--root-namespace ${CONFIG_DEFAULTS.rootNamespace}]
        check every document in DIR; print what it holds, or every problem with its
        file, line and field. Exit 0: valid, 1: invalid.
`

const EXIT_DENIED = 3

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
    json: { type: 'boolean' }
  })
  const dir = required(v.dir, '--dir')
  const from = required(v.from, '--from')
  const to = required(v.to, '--to')
  const trustDomain = typeof v['trust-domain'] === 'string' ? v['trust-domain'] : POLICY_DEFAULTS.trustDomain
  validateTrustDomain(trustDomain)
  const cluster = typeof v['cluster-file'] === 'string' ? await readCluster(v['cluster-file']) : null
  const snapshot = await loadResourceDirectory(dir, { rootNamespace: rootNamespaceOf(v) })
  const set = compilePolicySet(snapshot)
  const source = resolveSource(from, { cluster, trustDomain })
  const destinations = resolveDestinations(to, { cluster, trustDomain })
  const results = destinations.map((d) => ({ destination: d.description, explanation: explain(set, { source, destination: d }) }))
  const allowed = results.every((r) => r.explanation.allowed)
  if (v.json === true) {
    process.stdout.write(JSON.stringify({ allowed, source: source.description, results }, null, 2) + '\n')
  } else {
    const cwd = process.cwd()
    process.stdout.write(results.map((r) => explanationText(r.explanation, { cwd, source: source.description, destination: r.destination })).join('\n'))
  }
  return allowed ? 0 : EXIT_DENIED
}

async function validate (argv: string[]): Promise<number> {
  const v = parse('validate', argv, { dir: { type: 'string' }, 'root-namespace': { type: 'string' } })
  const dir = required(v.dir, '--dir')
  const snapshot = await loadResourceDirectory(dir, { rootNamespace: rootNamespaceOf(v) })
  const lines = [
    `${snapshot.origin}: valid (${snapshot.files.length} file${snapshot.files.length === 1 ? '' : 's'}, root namespace ${snapshot.rootNamespace})`,
    ...snapshot.authorizationPolicies.map((p) => `  AuthorizationPolicy ${p.ref}  ${p.spec.action}${p.dryRun ? ' [dry-run]' : ''}  ${p.apiVersion}`),
    ...snapshot.peerAuthentications.map((p) => `  PeerAuthentication  ${p.ref}  ${p.spec.mtls?.mode ?? 'UNSET'}  ${p.apiVersion}`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>

function parse (sub: string, argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): Values {
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
