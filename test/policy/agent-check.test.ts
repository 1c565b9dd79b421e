import t, { type Test } from 'tap'
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { listText, namespaceObj, nodeObj, podObj } from '../discovery/fixture'
import { ferry } from '../helpers/cli'
import { captureLog } from '../proxy/harness'
import { loopbackPlatform, RecordingCapture } from '../agent/loopback-platform'
import { ap } from './helpers'
import { waitFor } from '../helpers/wait'

// The agent's live policy endpoints and `ferry policy check --agent HOST:PORT`, on a real
// agent (loopback stand-in platform: no root needed): it starts with a --config-dir it
// cannot read and no saved configuration, and must not be ready nor explain anything;
// once the directory is readable, /debug/config lists every object with its state and
// the CLI prints the agent's explanation. Without --config-dir there is no policy:
// allowed, explained as such.

/** The bearer token the test agents accept for /debug/* (--admin-token-file). */
const TOKEN = 'agent-check-admin-token'

async function httpGet (port: number, path: string, authorization: string | null = `Bearer ${TOKEN}`): Promise<{ status: number, body: any, headers: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, headers: authorization === null ? {} : { authorization } }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : text, headers: res.headers }) })
    }).on('error', reject)
  })
}

function setup (t: Test): { dir: string, configDir: string, file: string, tokenFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-check-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const tokenFile = join(dir, 'admin.token')
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
  const configDir = join(dir, 'config')
  mkdirSync(configDir)
  const netns = join(dir, 'netns-db')
  writeFileSync(netns, '')
  const file = join(dir, 'cluster.json')
  writeFileSync(file, listText([
    nodeObj('n1'),
    namespaceObj('dev', { 'ferry.dev/mesh': 'enabled' }),
    namespaceObj('prod', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'web', namespace: 'dev', uid: 'u-web', node: 'n2', ips: ['10.244.2.5'], serviceAccountName: 'web', labels: { app: 'web' } }),
    podObj({ name: 'db', namespace: 'prod', uid: 'u-db', ips: ['127.0.0.2'], labels: { app: 'db' }, annotations: { 'lab.ferry.dev/netns': netns, 'lab.ferry.dev/cgroup': '/sys/fs/cgroup/unified/lab/db' } })
  ]))
  return { dir, configDir, file, tokenFile }
}


function agentArgs (file: string, configDir: string | null, extra: string[] = [], tokenFile: string | null = join(file, '..', 'admin.token')): string[] {
  const args = ['--node', 'n1', '--cluster-file', file, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0', ...(tokenFile === null ? [] : ['--admin-token-file', tokenFile]), ...extra]
  if (configDir !== null) args.push('--config-dir', configDir)
  return args
}

async function startAgent (t: Test, file: string, configDir: string | null, extra: string[] = [], tokenFile?: string | null): Promise<Agent> {
  const agent = await Agent.start(parseAgentOptions(agentArgs(file, configDir, extra, tokenFile)), { platform: loopbackPlatform(new RecordingCapture()), log: captureLog().log, retry: { initialMs: 50, maxMs: 200 } })
  let closed = false
  const close = agent.close.bind(agent)
  agent.close = async () => { if (!closed) { closed = true; await close() } }
  t.teardown(async () => { await agent.close() })
  return agent
}

t.test('a --config-dir that cannot be read at start: not ready, nothing to explain; readable: live explanations, a bad object reported alone', async (t) => {
  const { configDir, file, tokenFile } = setup(t)
  const tokenArgs = ['--token-file', tokenFile]
  rmSync(configDir, { recursive: true })
  const agent = await startAgent(t, file, configDir)
  const { adminPort, readyPort } = agent.admin

  await waitFor(async () => (await httpGet(readyPort, '/healthz/ready')).body.enrolled.length === 1, { timeoutMs: 3000, what: 'db enrolled' })
  const notReady = await httpGet(readyPort, '/healthz/ready')
  t.equal(notReady.status, 503, 'enrolled, but not ready: never had a configuration')
  t.match(notReady.body, { ready: false, enrolled: ['u-db'], pending: [], config: { ready: false, required: true, generation: 0, reason: /cannot be read and no configuration was ever in force/, issues: [/config: cannot read \(ENOENT\)/] } })
  t.equal((await httpGet(adminPort, '/debug/config')).status, 503)
  const none = await httpGet(adminPort, '/debug/authz?from=dev/web&to=prod/db:5432')
  t.match(none, { status: 503, body: { code: 'FERRY_ERR_CONFIG', error: /cannot be read/ } })
  const cli = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, ...tokenArgs, '--from', 'dev/web', '--to', 'prod/db:5432'])
  t.equal(cli.code, 1)
  t.match(cli.stderr, /FERRY_ERR_CONFIG: ferry policy check: agent 127\.0\.0\.1:\d+ answered 503: the configuration source cannot be read/)

  // A good policy and, beside it, a bad one: the good one applies, the bad one is reported.
  mkdirSync(join(configDir, '..'), { recursive: true })
  const staging = `${configDir}.new`
  mkdirSync(staging)
  writeFileSync(join(staging, 'bad.yaml'), ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]') + ap('prod', 'bad', 'action: PERMIT'))
  renameSync(staging, configDir)
  await waitFor(async () => (await httpGet(readyPort, '/healthz/ready')).status === 200, { timeoutMs: 5000, what: 'ready once readable' })
  t.match((await httpGet(readyPort, '/healthz/ready')).body, { ready: true, config: { ready: true, required: true, generation: 1 } })
  const config = await httpGet(adminPort, '/debug/config')
  t.match(config, {
    status: 200,
    body: {
      node: 'n1',
      generation: 1,
      origin: configDir,
      resources: [{ kind: 'AuthorizationPolicy', ref: 'prod/deny-dev', summary: 'DENY', line: 1 }],
      objects: [
        { object: 'AuthorizationPolicy prod/deny-dev', state: 'accepted', inForce: 'as-written', issues: [] },
        { object: 'AuthorizationPolicy prod/bad', state: 'refused', inForce: 'none', issues: [/bad\.yaml:\d+: AuthorizationPolicy prod\/bad: spec\.action: "PERMIT" is not one of "ALLOW", "DENY"/] }
      ],
      counts: { accepted: 1, degraded: 0, refused: 1 }
    }
  }, '/debug/config lists every object with its state and reasons')
  t.equal(config.body.resources.length, 1, 'the refused object is not in force')

  const denied = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, ...tokenArgs, '--from', 'dev/web', '--to', 'prod/db:5432'])
  t.equal(denied.code, 3, `denied: exit 3 ${denied.stderr}`)
  t.match(denied.stdout, /^DENIED {2}pod dev\/web \(spiffe:\/\/cluster\.local\/ns\/dev\/sa\/web, 10\.244\.2\.5\)\n {5}→ {3}pod prod\/db \(workload db\)\n {2}decided by {2}DENY policy prod\/deny-dev, rule 0/)
  t.match(denied.stdout, /\nanswered by agent 127\.0\.0\.1:\d+: live configuration generation 1\n$/)
  const allowed = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, ...tokenArgs, '--json', '--from', 'cluster.local/ns/prod/sa/api', '--to', 'prod/app=db:5432'])
  t.equal(allowed.code, 0)
  t.match(JSON.parse(allowed.stdout), { allowed: true, answeredBy: /^answered by agent 127\.0\.0\.1/, results: [{ explanation: { decision: { basis: 'no-allow-policy' }, config: { generation: 1 } } }] })

  t.match(await httpGet(adminPort, '/debug/authz?from=dev/web'), { status: 400, body: { code: 'FERRY_ERR_INVALID_ARG' } })
  t.match(await httpGet(adminPort, '/debug/authz?from=dev/ghost&to=prod/db:5432'), { status: 404, body: { code: 'FERRY_ERR_WORKLOAD_NOT_FOUND', error: /no pod ghost in namespace dev/ } })
  const notFound = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, ...tokenArgs, '--from', 'dev/ghost', '--to', 'prod/db:5432'])
  t.equal(notFound.code, 1)
  t.match(notFound.stderr, /FERRY_ERR_WORKLOAD_NOT_FOUND: ferry policy check: agent 127\.0\.0\.1:\d+ answered 404: --from dev\/ghost: no pod ghost/)
})

// Guards --config-cache with --config-dir: an agent restarted while its directory cannot
// be read enforces what it saved, instead of denying everything as one that never had
// a configuration; a corrupt save is reported and ignored.
t.test('--config-cache: a restarted agent whose directory cannot be read is ready from its saved configuration', async (t) => {
  const { dir, configDir, file } = setup(t)
  const cache = join(dir, 'state', 'config-cache.json')
  writeFileSync(join(configDir, 'deny.yaml'), ap('prod', 'deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]'))
  const first = await startAgent(t, file, configDir, ['--config-cache', cache])
  await waitFor(() => existsSync(cache), { timeoutMs: 5000, what: 'the saved configuration' })
  await first.close()

  rmSync(configDir, { recursive: true })
  const second = await startAgent(t, file, configDir, ['--config-cache', cache])
  const ready = await waitFor(async () => { const r = await httpGet(second.admin.readyPort, '/healthz/ready'); return r.status === 200 ? r : null }, { timeoutMs: 5000, what: 'ready from the save' })
  t.match(ready.body, { ready: true, config: { ready: true, generation: 1 } })
  const config = await httpGet(second.admin.adminPort, '/debug/config')
  t.match(config.body, { origin: /^saved configuration of .*config/, resources: [{ ref: 'prod/deny-dev', summary: 'DENY' }] })
  t.match(await httpGet(second.admin.adminPort, '/debug/authz?from=dev/web&to=prod/db:5432'), { status: 200, body: { allowed: false, results: [{ explanation: { decision: { basis: 'deny-matched', policy: 'prod/deny-dev' } } }] } })
  await second.close()

  writeFileSync(cache, '{"format":"ferry.dev/saved-config/v1","documents":[')
  const { log, lines } = captureLog()
  const third = await Agent.start(parseAgentOptions(agentArgs(file, configDir, ['--config-cache', cache])), { platform: loopbackPlatform(new RecordingCapture()), log, retry: { initialMs: 50, maxMs: 200 } })
  t.teardown(async () => { await third.close() })
  t.equal((await httpGet(third.admin.readyPort, '/healthz/ready')).status, 503, 'a corrupt save is not a configuration: never had one')
  t.ok(lines.some((l) => l.msg === 'saved configuration not used' && l.code === 'FERRY_ERR_CONFIG_STATE' && /the saved configuration is corrupt \(not JSON/.test(String(l.err))), 'reported')
})

t.test('without --config-dir: no policy, explained as allowed; no config section in readiness', async (t) => {
  const { file } = setup(t)
  const agent = await startAgent(t, file, null)
  await waitFor(async () => (await httpGet(agent.admin.readyPort, '/healthz/ready')).status === 200, { timeoutMs: 3000, what: 'ready' })
  t.notOk('config' in (await httpGet(agent.admin.readyPort, '/healthz/ready')).body)
  const r = await httpGet(agent.admin.adminPort, '/debug/authz?from=dev/web&to=prod/db:5432')
  t.match(r, { status: 200, body: { allowed: true, generation: 0, origin: /no --config-dir/, results: [{ explanation: { decision: { basis: 'no-allow-policy' } } }] } })
})

t.test('/debug/* answers only a caller with the admin token; /metrics and readiness answer anyone', async (t) => {
  const { file, tokenFile } = setup(t)
  const agent = await startAgent(t, file, null)
  const { adminPort, readyPort } = agent.admin
  const none = await httpGet(adminPort, '/debug/pods', null)
  t.match(none, { status: 401, body: { code: 'FERRY_ERR_AUTHN', error: /a bearer token is required \(token-file\)/ } })
  t.equal(none.headers['www-authenticate'], 'Bearer realm="ferry-agent"')
  t.match(await httpGet(adminPort, '/debug/config', 'Bearer not-the-token'), { status: 401, body: { error: /unknown token/ } })
  t.match(await httpGet(adminPort, '/debug/authz?from=dev/web&to=prod/db:5432', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`), { status: 401, body: { error: /not a bearer token/ } })
  t.equal((await httpGet(adminPort, '/debug/pods')).status, 200, 'the token opens it')
  t.equal((await httpGet(adminPort, '/metrics', null)).status, 200, '/metrics needs no token')
  // Ready or not yet (a loaded machine), but never 401.
  t.not((await httpGet(readyPort, '/healthz/ready', null)).status, 401, 'readiness needs no token')
  t.match((await httpGet(adminPort, '/metrics', null)).body, /ferry_admin_debug_requests_total\{result="401"\} 3\n/)
  // The file is re-read when it changes: a rotated token replaces the old one.
  writeFileSync(tokenFile, 'rotated-token\n')
  t.equal((await httpGet(adminPort, '/debug/pods')).status, 401, 'the old token no longer opens it')
  t.equal((await httpGet(adminPort, '/debug/pods', 'Bearer rotated-token')).status, 200)
  const cli = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, '--from', 'dev/web', '--to', 'prod/db:5432'])
  t.equal(cli.code, 1)
  t.match(cli.stderr, /FERRY_ERR_AUTHN: ferry policy check: agent 127\.0\.0\.1:\d+ answered 401: a bearer token is required/)

  const closed = await startAgent(t, file, null, [], null)
  t.match(await httpGet(closed.admin.adminPort, '/debug/pods'), { status: 403, body: { error: /the debug endpoints are closed on this agent/ } }, 'no token file and no --kubernetes: closed to everyone')
})

t.test('--agent and --lab usage errors', async (t) => {
  for (const [args, msg] of [
    [['--agent', 'nohost'], /--agent "nohost" is invalid: expected HOST:PORT/],
    [['--agent', '127.0.0.1:1', '--dir', '.'], /--dir is for checking files/],
    [['--lab', 'x', '--agent', '127.0.0.1:1'], /give --lab or --agent, not both/],
    [['--node', 'node1', '--dir', '.'], /--node goes with --lab/]
  ] as Array<[string[], RegExp]>) {
    const r = await ferry(['policy', 'check', ...args, '--from', 'dev/web', '--to', 'prod/app=db:1'])
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, msg)
  }
  const down = await ferry(['policy', 'check', '--agent', '127.0.0.1:1', '--from', 'dev/web', '--to', 'prod/app=db:1'])
  t.equal(down.code, 1)
  t.match(down.stderr, /FERRY_ERR_AGENT_UNAVAILABLE: ferry policy check: agent 127\.0\.0\.1:1: cannot connect \(ECONNREFUSED\)/)
})
