import t, { type Test } from 'tap'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync, renameSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FERRY, REPO, ferry, ferryOk } from '../helpers/cli'
import { agentGet } from '../helpers/agent-admin'
import { counter, labDir, metrics, nodeLog } from '../helpers/lab'
import { labConfigCache } from '../../src/lab/policies'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// Every AuthorizationPolicy match type, its not… form, precedence, the defaults, the
// three scopes and dry-run, through real connections in one two-node lab
// (test/fixtures/policy-matrix/lab.yaml):
//
//   node1: dev/client, prod/api, stage/echo        node2: stage/client, prod/db (:8080, :9090)
//
// Each case applies one fixture with `ferry lab apply`, polls both agents' /debug/config
// until the policy set in force is exactly the fixture's (the swap that publishes it is
// the one that enforces it), then makes one new connection for each of eight
// source → destination pairs — half on the same-node fast path, half through the tunnel —
// and checks each outcome and the destination's inbound access line (`authz`: the
// deciding policy and basis), then deletes the fixture. Then policies Ferry cannot
// enforce as written (an L7 field in an ALLOW must not open anything; in a DENY it
// denies more), a bad object beside good ones through an agent restart, and the one
// case left for failing closed: an agent that never had a configuration.

const lab = uniqueLabName('pmx')
const DIR = join(REPO, 'test/fixtures/policy-matrix')
const NODES = ['node1', 'node2'] as const
type Ns = 'dev' | 'stage'

interface Dest { readonly host: string, readonly namespace: string, readonly pod: string, readonly node: string }
const API: Dest = { host: 'api.prod.svc.cluster.local', namespace: 'prod', pod: 'api', node: 'node1' }
const DB: Dest = { host: 'db.prod.svc.cluster.local', namespace: 'prod', pod: 'db', node: 'node2' }
const ECHO: Dest = { host: 'echo.stage.svc.cluster.local', namespace: 'stage', pod: 'echo', node: 'node1' }
const CLIENT_NODE: Record<Ns, string> = { dev: 'node1', stage: 'node2' }

interface Pair { readonly name: string, readonly from: Ns, readonly dest: Dest, readonly port: number }
function pair (from: Ns, dest: Dest, port: number): Pair {
  const path = CLIENT_NODE[from] === dest.node ? 'same node' : 'tunnel'
  return { name: `${from}/client → ${dest.namespace}/${dest.pod}:${port} (${path})`, from, dest, port }
}

const PAIRS = {
  devApi: pair('dev', API, 8080),
  devDb: pair('dev', DB, 8080),
  devDbAdmin: pair('dev', DB, 9090),
  devEcho: pair('dev', ECHO, 8080),
  stageApi: pair('stage', API, 8080),
  stageDb: pair('stage', DB, 8080),
  stageDbAdmin: pair('stage', DB, 9090),
  stageEcho: pair('stage', ECHO, 8080)
}
type PairKey = keyof typeof PAIRS
const KEYS = Object.keys(PAIRS) as PairKey[]

/**
 * What a connection must do, and what the destination's access line must say:
 *   'default'     allowed, no policy decided (no DENY matched, no ALLOW applies): no `authz`
 *   'allow NS/P'  allowed by that ALLOW policy (rule 0; 'allow NS/P rule N': rule N)
 *   'deny NS/P'   denied by that DENY policy (rule 0; 'deny NS/P rule N': rule N)
 *   'deny'        denied: ALLOW policies apply and none matched
 *   'dry-run-denies NS/P'  allowed; that dry-run DENY matched: enforced, it would deny
 *   'dry-run-passes NS/P'  allowed; that dry-run DENY did not match
 */
type Outcome = 'default' | 'deny' | `allow ${string}` | `deny ${string}` | `dry-run-denies ${string}` | `dry-run-passes ${string}`
const isAllowed = (o: Outcome): boolean => o === 'default' || o.startsWith('allow') || o.startsWith('dry-run')
function outcomes (base: Outcome, overrides: Partial<Record<PairKey, Outcome>> = {}): Record<PairKey, Outcome> {
  return Object.fromEntries(KEYS.map((k) => [k, overrides[k] ?? base])) as Record<PairKey, Outcome>
}
/** Every pair from dev to prod gets `dev`, from stage to prod `stage`; those to stage/echo (not in prod) `default`. */
function byClient (dev: Outcome, stage: Outcome): Record<PairKey, Outcome> {
  return outcomes('default', { devApi: dev, devDb: dev, devDbAdmin: dev, stageApi: stage, stageDb: stage, stageDbAdmin: stage })
}

interface ProbeResult { readonly id: string, readonly ok: boolean, readonly err: string | null, readonly body: string }

/** test/fixtures/policy-matrix/probe.js running in a client pod: one connection per request. */
class Client {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly waiting = new Map<string, (r: ProbeResult) => void>()
  private seq = 0
  private buf = ''

  constructor (readonly ns: Ns) {
    this.child = spawn(process.execPath, [FERRY, 'lab', 'exec', '--lab', lab, '-n', ns, 'client', '--', process.execPath, join(DIR, 'probe.js')], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdout.on('data', (c: Buffer) => {
      this.buf += c.toString()
      let i
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i)
        this.buf = this.buf.slice(i + 1)
        let r: ProbeResult
        try { r = JSON.parse(line) } catch { continue }
        this.waiting.get(r.id)?.(r)
        this.waiting.delete(r.id)
      }
    })
  }

  async connect (host: string, port: number): Promise<ProbeResult> {
    const id = `${this.ns}-${++this.seq}`
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`probe ${id} (${host}:${port}) did not answer`)) }, 15_000)
      this.waiting.set(id, (r) => { clearTimeout(timer); resolve(r) })
      this.child.stdin.write(`${id} ${host} ${port}\n`)
    })
  }

  async close (): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise((resolve) => this.child.once('close', resolve))
    this.child.stdin.end()
    this.child.kill('SIGTERM')
    await exited
  }
}

let clients: Record<Ns, Client>

t.setTimeout(300_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, join(DIR, 'lab.yaml')], { timeoutMs: 150_000 })
  clients = { dev: new Client('dev'), stage: new Client('stage') }
})
t.teardown(async () => {
  if (clients !== undefined) await Promise.all([clients.dev.close(), clients.stage.close()])
  await ferry(['lab', 'down', lab], { timeoutMs: 60_000 })
})

/** Polls both agents until the policies in force are exactly `refs`; returns how long that took. */
async function waitForPolicies (refs: readonly string[]): Promise<number> {
  const start = Date.now()
  const want = JSON.stringify([...refs].sort())
  for (const node of NODES) {
    await waitFor(async () => {
      const r = await agentGet(lab, node, '/debug/config')
      return r.status === 200 && JSON.stringify(r.body.resources.map((x: { ref: string }) => x.ref).sort()) === want
    }, { timeoutMs: 20_000, intervalMs: 20, what: `${node} to enforce ${want}` })
  }
  return Date.now() - start
}

function portOf (address: string): number { return Number(address.slice(address.lastIndexOf(':') + 1)) }

/** The destination's inbound access line for `p`, among the lines logged after `marks`. */
function inboundLine (p: Pair, marks: Record<string, number>): any {
  return nodeLog(lab, p.dest.node).slice(marks[p.dest.node]).find((l) =>
    l.msg === 'access' && l.direction === 'inbound' && l.source?.namespace === p.from &&
    l.destination?.pod === p.dest.pod && portOf(String(l.original_destination)) === p.port)
}

function logMarks (): Record<string, number> {
  return Object.fromEntries(NODES.map((n) => [n, nodeLog(lab, n).length]))
}

/** One connection per pair, all at once; then each outcome and its access line. */
async function checkPairs (t: Test, expected: Record<PairKey, Outcome>): Promise<Record<PairKey, any>> {
  const marks = logMarks()
  const results = await Promise.all(KEYS.map(async (k) => await clients[PAIRS[k].from].connect(PAIRS[k].dest.host, PAIRS[k].port)))
  KEYS.forEach((k, i) => {
    const allowed = isAllowed(expected[k])
    const r = results[i]
    t.equal(r.ok, allowed, `${PAIRS[k].name}: ${allowed ? 'allowed' : 'denied'}${r.err === null ? '' : ` (${r.err})`}`)
    if (allowed && r.ok) t.match(r.body, new RegExp(`^${PAIRS[k].dest.pod} ${PAIRS[k].port} /`), `${PAIRS[k].name}: answered by the destination`)
  })
  const lines = await waitFor(() => {
    const found = KEYS.map((k) => inboundLine(PAIRS[k], marks))
    return found.every((l) => l !== undefined) ? found : null
  }, { timeoutMs: 10_000, what: 'an inbound access line at the destination for every pair' })
  const byKey = {} as Record<PairKey, any>
  KEYS.forEach((k, i) => {
    const line = lines[i]
    byKey[k] = line
    const want = expected[k]
    const name = `${PAIRS[k].name}: access line`
    if (want === 'default') {
      t.match(line, { result: 'ok' }, `${name}: ok`)
      t.notOk(line.authz, `${name}: no policy decided (no authz field)`)
    } else if (want === 'deny') {
      t.match(line, { result: 'denied', authz: { allowed: false, basis: 'no-allow-matched' } }, `${name}: denied, no ALLOW matched`)
      t.notOk('policy' in (line.authz ?? {}), `${name}: names no policy`)
    } else if (want.startsWith('dry-run')) {
      const [verb, policy] = want.split(' ')
      const denies = verb === 'dry-run-denies'
      t.match(line, {
        result: 'ok',
        authz: { allowed: true, basis: 'no-allow-policy', dryRunAllowed: !denies, dryRun: [denies ? `DENY ${policy} rule 0 matched` : `DENY ${policy} no match`] }
      }, `${name}: allowed; dry-run ${policy} ${denies ? 'would deny' : 'would allow'}`)
    } else {
      const [verb, policy, , ruleText] = want.split(' ')
      const rule = Number(ruleText ?? 0)
      t.match(line, verb === 'allow'
        ? { result: 'ok', authz: { allowed: true, basis: 'allow-matched', policy, rule } }
        : { result: 'denied', authz: { allowed: false, basis: 'deny-matched', policy, rule } }, `${name}: ${want}`)
    }
  })
  return byKey
}

/** Applies `file`, waits until both agents enforce `refs`, checks every pair, runs `more`, deletes it. */
async function policyCase (t: Test, file: string, refs: readonly string[], expected: Record<PairKey, Outcome>, more: (lines: Record<PairKey, any>) => Promise<void> = async () => {}): Promise<Record<PairKey, any>> {
  await ferryOk(['lab', 'apply', '--lab', lab, join(DIR, file)])
  const ms = await waitForPolicies(refs)
  t.comment(`${file}: both agents enforce it ${ms} ms after \`ferry lab apply\` returned`)
  const lines = await checkPairs(t, expected)
  await more(lines)
  await ferryOk(['lab', 'delete', '--lab', lab, file])
  return lines
}

t.test('no policy: every pair allowed, no decision on the access lines', async (t) => {
  await waitForPolicies([])
  await checkPairs(t, outcomes('default'))
})

t.test('principals, with an ALLOW policy present: only the named identity gets in; namespace-wide (stage untouched)', async (t) => {
  await policyCase(t, '01-principals.yaml', ['prod/allow-stage-client'], byClient('deny', 'allow prod/allow-stage-client'))
})

t.test('notPrincipals: DENY every identity but one', async (t) => {
  await policyCase(t, '02-not-principals.yaml', ['prod/deny-all-but-stage-client'], byClient('deny prod/deny-all-but-stage-client', 'default'))
})

t.test('namespaces, with selector.matchLabels scope: only prod/db denies dev', async (t) => {
  await policyCase(t, '03-namespaces-selector.yaml', ['prod/deny-dev-to-db'], outcomes('default', { devDb: 'deny prod/deny-dev-to-db', devDbAdmin: 'deny prod/deny-dev-to-db' }))
})

t.test('notNamespaces: ALLOW every namespace but dev', async (t) => {
  await policyCase(t, '04-not-namespaces.yaml', ['prod/allow-all-but-dev'], byClient('deny', 'allow prod/allow-all-but-dev'))
})

t.test('ipBlocks: the source pod\'s address, on the same-node path and through the tunnel', async (t) => {
  const lines = await policyCase(t, '05-ip-blocks.yaml', ['prod/deny-node1-pods'], byClient('deny prod/deny-node1-pods', 'default'))
  t.match(lines.devDb.source, { ip: /^10\.244\.1\./ }, 'through the tunnel, the destination sees the source pod\'s address (from node1\'s range)')
  t.match(lines.devApi.source, { ip: /^10\.244\.1\./ }, 'on the same node too')
  t.match(lines.stageApi.source, { ip: /^10\.244\.2\./ }, 'stage/client (node2) is outside the block')
})

t.test('notIpBlocks: ALLOW sources outside a block', async (t) => {
  await policyCase(t, '06-not-ip-blocks.yaml', ['prod/allow-off-node1'], byClient('deny', 'allow prod/allow-off-node1'))
})

t.test('ports: DENY one destination port', async (t) => {
  await policyCase(t, '07-ports.yaml', ['prod/deny-db-admin-port'], outcomes('default', { devDbAdmin: 'deny prod/deny-db-admin-port', stageDbAdmin: 'deny prod/deny-db-admin-port' }))
})

t.test('notPorts: ALLOW all ports but one (the others of the workload: no ALLOW applies elsewhere)', async (t) => {
  await policyCase(t, '08-not-ports.yaml', ['prod/allow-db-except-admin'], outcomes('default', {
    devDb: 'allow prod/allow-db-except-admin', stageDb: 'allow prod/allow-db-except-admin', devDbAdmin: 'deny', stageDbAdmin: 'deny'
  }))
})

t.test('DENY over ALLOW: a matching DENY wins over an ALLOW that matches everything', async (t) => {
  await policyCase(t, '09-deny-over-allow.yaml', ['prod/allow-all', 'prod/deny-dev'], byClient('deny prod/deny-dev', 'allow prod/allow-all'))
})

t.test('mesh-wide: a policy in the root namespace applies in every namespace; ferry policy check --lab explains it', async (t) => {
  await ferryOk(['lab', 'apply', '--lab', lab, join(DIR, '10-mesh-wide.yaml')])
  await waitForPolicies(['ferry-system/deny-dev-mesh-wide'])
  // dev/client → stage/echo too: the root namespace's policy applies in stage as in prod.
  await checkPairs(t, { ...byClient('deny ferry-system/deny-dev-mesh-wide', 'default'), devEcho: 'deny ferry-system/deny-dev-mesh-wide' })

  const r = await ferry(['policy', 'check', '--lab', lab, '--node', 'node1', '--from', 'dev/client', '--to', 'stage/echo:8080'])
  t.equal(r.code, 3, `policy check exits 3 (denied): ${r.stderr}`)
  t.match(r.stdout, /^DENIED {2}pod dev\/client \(spiffe:\/\/cluster\.local\/ns\/dev\/sa\/client, 10\.244\.1\.\d+\)/)
  t.match(r.stdout, /decided by {2}DENY policy ferry-system\/deny-dev-mesh-wide, rule 0/)
  t.match(r.stdout, /DENY {2}ferry-system\/deny-dev-mesh-wide {2}mesh-wide {2}rule 0 matches/)
  t.match(r.stdout, /answered by agent node1 of lab \S+ \(127\.0\.0\.1:15020 in netns \S+\): live configuration generation \d+/)
  const ok = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'stage/client', '--to', 'stage/echo:8080'])
  t.equal(ok.code, 0, 'stage/client → stage/echo: allowed (exit 0)')
  t.match(ok.stdout, /^ALLOWED/)
  await ferryOk(['lab', 'delete', '--lab', lab, '10-mesh-wide.yaml'])
})

t.test('dry-run (istio.io/dry-run): logged with the would-be decision, never enforced', async (t) => {
  const marks = logMarks()
  await policyCase(t, '11-dry-run.yaml', ['prod/dry-deny-dev'], byClient('dry-run-denies prod/dry-deny-dev', 'dry-run-passes prod/dry-deny-dev'))
  for (const [node, pod] of [['node2', 'db'], ['node1', 'api']]) {
    const line = nodeLog(lab, node).slice(marks[node]).find((l) => l.msg === 'authorization dry-run' && l.destination === `prod/${pod}` && l.port === 8080 && l.source_principal === 'spiffe://cluster.local/ns/dev/sa/client')
    t.match(line, { allowed: true, dryRunAllowed: false, dryRun: ['DENY prod/dry-deny-dev rule 0 matched'], port: 8080 }, `${node} logs "authorization dry-run" for dev/client → prod/${pod}: enforced, it would deny`)
  }
})

// Guards the rule for what an L4 proxy cannot enforce (Istio ambient's): before, such a
// policy was refused whole — an ALLOW with an HTTP rule then took no effect at all, so
// the workload stayed open to everyone.
t.test('an ALLOW with a condition Ferry cannot check (requestPrincipals) does not open prod: that rule matches nothing, the intact rule still allows; policy check --lab says why', async (t) => {
  const applied = await ferry(['lab', 'apply', '--lab', lab, join(DIR, '12-allow-with-l7.yaml')])
  t.equal(applied.code, 0, applied.stderr)
  t.match(applied.stderr, /degraded: \S*12-allow-with-l7\.yaml:15: AuthorizationPolicy prod\/allow-with-l7: spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals: not supported by Ferry.*rule 0 of this ALLOW policy never matches/, 'lab apply says what is not enforced as written')
  await ferryOk(['lab', 'delete', '--lab', lab, '12-allow-with-l7.yaml'])
  await waitForPolicies([])
  await policyCase(t, '12-allow-with-l7.yaml', ['prod/allow-with-l7'], {
    ...byClient('deny', 'deny'), devDbAdmin: 'allow prod/allow-with-l7 rule 1'
  }, async (lines) => {
    for (const k of ['stageApi', 'stageDb', 'devApi'] as const) t.match(lines[k].authz, { basis: 'no-allow-matched', degraded: true }, `${PAIRS[k].name}: the access line says a degraded policy decided`)
    t.notOk(lines.devDbAdmin.authz.degraded, 'the allow by the intact rule is not degraded')
    const r = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'stage/client', '--to', 'prod/db:8080'])
    t.equal(r.code, 3, `denied (exit 3): ${r.stderr}`)
    t.match(r.stdout, /decided by {2}default: 1 ALLOW policy applies to the workload \(prod\/allow-with-l7\) and none matched; not enforced as written: prod\/allow-with-l7/)
    t.match(r.stdout, /degraded {4}ALLOW prod\/allow-with-l7 rule 0: matches nothing: Ferry cannot check spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals, and an ALLOW rule it cannot fully check never matches/)
    t.match(r.stdout, /rule 0: does not match — matches nothing/)
    const config = await agentGet(lab, 'node2', '/debug/config')
    t.match(config.body.objects, [{ object: 'AuthorizationPolicy prod/allow-with-l7', state: 'degraded', issues: [/spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals/] }])
  })
})

t.test('a DENY with conditions Ferry cannot check (JWT) denies more: applied without them', async (t) => {
  await policyCase(t, '13-deny-with-l7.yaml', ['prod/deny-with-l7'], {
    ...outcomes('default'),
    devDbAdmin: 'deny prod/deny-with-l7',
    stageApi: 'deny prod/deny-with-l7 rule 1',
    stageDb: 'deny prod/deny-with-l7 rule 1',
    stageDbAdmin: 'deny prod/deny-with-l7 rule 1'
  }, async (lines) => {
    for (const k of ['devDbAdmin', 'stageApi', 'stageDb'] as const) t.match(lines[k].authz, { degraded: true }, `${PAIRS[k].name}: the access line says a degraded policy decided`)
    const r = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'dev/client', '--to', 'prod/db:9090'])
    t.equal(r.code, 3, `denied (exit 3): ${r.stderr}`)
    t.match(r.stdout, /decided by {2}DENY policy prod\/deny-with-l7, rule 0/)
    t.match(r.stdout, /degraded {4}DENY prod\/deny-with-l7 rule 0: applied without spec\.rules\[0\]\.from\[0\]\.source\.notRequestPrincipals \(Ferry cannot check them\): it matches more connections, so it denies more/)
  })
})

// Guards per-object admission in the agents and their saved configuration: a bad object
// beside good ones is refused alone, and an agent restarted with it present is ready
// and enforces the rest (before, it failed closed: not ready, every connection denied).
t.test('a bad object in the directory: refused alone; node2\'s agent restarted with it present is ready and enforces the rest', async (t) => {
  // Written past `ferry lab apply` (which would refuse it): a hidden temporary, renamed.
  const configDir = join(labDir(lab), 'config')
  const bad = join(configDir, 'bad-unknown-field.yaml')
  writeFileSync(join(configDir, '.bad.tmp'), readFileSync(join(DIR, 'bad-unknown-field.yaml')))
  renameSync(join(configDir, '.bad.tmp'), bad)
  t.teardown(() => { rmSync(bad, { force: true }) })
  await ferryOk(['lab', 'apply', '--lab', lab, join(DIR, '03-namespaces-selector.yaml')])
  await waitForPolicies(['prod/deny-dev-to-db'])
  t.teardown(async () => { await ferry(['lab', 'delete', '--lab', lab, '03-namespaces-selector.yaml']) })
  const refused = await waitFor(() => nodeLog(lab, 'node2').find((l) => l.msg === 'configuration object refused' && l.object === 'AuthorizationPolicy prod/broken'), { what: 'node2 refusing the bad object' })
  t.match(refused, { code: 'FERRY_ERR_CONFIG', inForce: 'none', issues: [/bad-unknown-field\.yaml:11: AuthorizationPolicy prod\/broken: spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field/] })

  await ferryOk(['lab', 'restart', '--lab', lab, '--node', 'node2', '--timeout', '60s'], { timeoutMs: 90_000 })
  const ready = await agentGet(lab, 'node2', '/healthz/ready', 15021)
  t.equal(ready.status, 200, 'ready')
  const config = await agentGet(lab, 'node2', '/debug/config')
  t.match(config.body, { counts: { accepted: 1, refused: 1 }, resources: [{ ref: 'prod/deny-dev-to-db' }] })
  t.match(config.body.objects.find((o: { object: string }) => o.object === 'AuthorizationPolicy prod/broken'), { state: 'refused', issues: [/unknown field/] })
  t.equal(counter(await metrics(lab, 'node2'), 'ferry_config_objects', { state: 'refused' }), 1)
  await checkPairs(t, outcomes('default', { devDb: 'deny prod/deny-dev-to-db', devDbAdmin: 'deny prod/deny-dev-to-db' }))
})

t.test('fail closed: an agent that never had a configuration (directory unreadable, nothing saved) denies inbound and is not ready', async (t) => {
  const configDir = join(labDir(lab), 'config')
  const aside = `${configDir}.aside`
  renameSync(configDir, aside)
  t.teardown(() => { if (!existsSync(configDir)) renameSync(aside, configDir) })
  rmSync(labConfigCache({ stateDir: labDir(lab) }, 'node2'), { force: true })

  // The new agent never becomes ready, so `lab restart` gives up; the agent keeps running.
  const restart = await ferry(['lab', 'restart', '--lab', lab, '--node', 'node2', '--timeout', '4s'], { timeoutMs: 60_000 })
  t.not(restart.code, 0, 'lab restart reports the agent not ready')
  t.match(restart.stderr, /FERRY_ERR_LAB_TIMEOUT/)
  const ready = await waitFor(async () => {
    const r = await agentGet(lab, 'node2', '/healthz/ready', 15021)
    return r.body.pending?.length === 0 && r.body.certificates?.ready === true ? r : null
  }, { timeoutMs: 30_000, what: 'node2\'s new agent to enroll its pods and hold their certificates' })
  t.equal(ready.status, 503, '/healthz/ready answers 503')
  t.match(ready.body, { ready: false, config: { ready: false, required: true, generation: 0, reason: /cannot be read and no configuration was ever in force/, issues: [/config: cannot read \(ENOENT\)/] } }, 'its config section says why')

  const marks = logMarks()
  const [devDb, stageDb, devApi] = await Promise.all([
    clients.dev.connect(DB.host, 8080), clients.stage.connect(DB.host, 8080), clients.dev.connect(API.host, 8080)
  ])
  t.equal(devDb.ok, false, `${PAIRS.devDb.name}: denied (${String(devDb.err)})`)
  t.equal(stageDb.ok, false, `${PAIRS.stageDb.name}: denied (${String(stageDb.err)})`)
  t.equal(devApi.ok, true, `${PAIRS.devApi.name}: node1 keeps its configuration: allowed`)
  for (const k of ['devDb', 'stageDb'] as const) {
    const line = await waitFor(() => inboundLine(PAIRS[k], marks), { what: `access line for ${PAIRS[k].name}` })
    t.match(line, { result: 'denied', authz: { allowed: false, basis: 'no-config' } }, `${PAIRS[k].name}: access line says no-config`)
  }
  t.ok(counter(await metrics(lab, 'node2'), 'ferry_authz_denied_total', { policy: '-', basis: 'no-config' }) >= 2, 'counted with basis no-config')
  const check = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'dev/client', '--to', 'prod/db:8080'])
  t.equal(check.code, 1, 'policy check against that agent is an error: it has no configuration to explain')
  t.match(check.stderr, /FERRY_ERR_CONFIG.*agent node2 of lab .* answered 503: the configuration source cannot be read/)

  renameSync(aside, configDir)
  await waitFor(async () => (await agentGet(lab, 'node2', '/healthz/ready', 15021)).status === 200, { timeoutMs: 20_000, what: 'node2 ready once the directory is back' })
  t.pass('ready once the directory is back')
  t.equal((await clients.dev.connect(DB.host, 8080)).ok, true, `${PAIRS.devDb.name}: allowed again`)
})
