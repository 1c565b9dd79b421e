import t, { type Test } from 'tap'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { Agent } from '../../src/agent/agent'
import { ConfigStream } from '../../src/agent/config-stream'
import { parseAgentOptions } from '../../src/agent/options'
import { createLabNodeTokens, writeLabNodeTokens } from '../../src/controller/lab-node-tokens'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { loopbackPlatform, OPEN_DEBUG, RecordingCapture } from '../agent/loopback-platform'
import { listText, namespaceObj, podObj } from '../discovery/fixture'
import { FERRY } from '../helpers/cli'
import { captureLog, tmpDir } from './harness'
import { waitFor } from '../helpers/wait'

// The controller killed mid-stream: a real `node bin/ferry.js controller …` child process,
// killed with SIGKILL while an agent's ConfigStream is connected. The agent keeps serving
// its last configuration, retries with backoff, and when a controller is back on the same
// address (same data directory, so the same root) it catches up with the configuration
// that changed in the meantime. Needs the built CLI (npm run build:ts).

const DENY_DEV = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-dev, namespace: prod }
spec:
  action: DENY
  rules: [{ from: [{ source: { namespaces: ["dev"] } }] }]
`
const STRICT_PROD = `apiVersion: security.ferry.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: prod }
spec: { mtls: { mode: STRICT } }
`

interface Running { child: ChildProcess, address: string, rootCert: string, output: () => string }

async function startController (t: { teardown: (fn: () => void) => void }, args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [FERRY, 'controller', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const listening = await waitFor(() => out.split('\n').filter((l) => l.includes('"controller listening"')).map((l) => JSON.parse(l) as { address: string, rootCert: string })[0],
    { timeoutMs: 30_000, what: `the controller to listen:\n${out}` })
  return { child, address: listening.address, rootCert: listening.rootCert, output: () => out }
}

function writeAtomic (dir: string, name: string, text: string): void {
  writeFileSync(join(dir, `.${name}.tmp`), text)
  renameSync(join(dir, `.${name}.tmp`), join(dir, name))
}

/**
 * A controller's files in a fresh directory: a policy directory holding DENY_DEV, node n1's
 * token, a cluster file of `objects`; `args` gives `ferry controller`'s options for a listen address.
 */
async function controllerFiles (t: Test, objects: Array<Record<string, unknown>>): Promise<{ dir: string, policies: string, tokenOf: ReadonlyMap<string, string>, args: (listen: string) => string[] }> {
  const dir = tmpDir(t)
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  writeAtomic(policies, 'deny.yaml', DENY_DEV)
  const { document, tokenOf } = createLabNodeTokens(['n1'])
  await writeLabNodeTokens(join(dir, 'tokens.json'), document)
  writeFileSync(join(dir, 'cluster.json'), listText(objects))
  const args = (listen: string): string[] => ['--data-dir', join(dir, 'ca'), '--listen', listen, '--lab-nodes', join(dir, 'tokens.json'),
    '--cluster-file', join(dir, 'cluster.json'), '--config-dir', policies]
  return { dir, policies, tokenOf, args }
}

t.test('SIGKILL the controller: the agent keeps its configuration, reconnects and catches up', async (t) => {
  const { dir, policies, tokenOf, args } = await controllerFiles(t, [podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' })])

  const first = await startController(t, args('127.0.0.1:0'))
  const { log, lines } = captureLog()
  const registry = new Registry()
  const stream = new ConfigStream({
    address: first.address,
    caRootsPem: readFileSync(first.rootCert, 'utf8'),
    token: () => tokenOf.get('n1') as string,
    log,
    registry,
    backoff: { initialMs: 200, maxMs: 1000, multiplier: 2, jitter: 0.5 },
    startTimeoutMs: 20_000
  })
  t.teardown(() => { stream.close() })
  const snapshots: ConfigSnapshot[] = []
  await stream.start({ onSnapshot: (s) => { snapshots.push(s) } })
  t.equal(snapshots.length, 1)
  t.same(stream.current()?.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'])
  const firstInstance = stream.state().controller
  await waitFor(() => first.output().includes('"msg":"configuration acknowledged"'), { what: 'the ACK in the controller log' })

  first.child.kill('SIGKILL')
  const [, signal] = await once(first.child, 'exit') as [number | null, string | null]
  t.equal(signal, 'SIGKILL')
  await waitFor(() => !stream.state().connected, { what: 'the agent noticing' })
  t.ok(lines.some((l) => l.msg === 'configuration stream down; the last good configuration keeps serving' && l.code === 'FERRY_ERR_CONFIG_STREAM'))

  // While the controller is down: the last configuration keeps serving, and the agent keeps trying.
  const connectsBefore = (await registry.getSingleMetric('ferry_config_stream_connects_total')?.get())?.values[0]?.value ?? 0
  writeAtomic(policies, 'strict.yaml', STRICT_PROD)
  await waitFor(async () => ((await registry.getSingleMetric('ferry_config_stream_connects_total')?.get())?.values[0]?.value ?? 0) >= connectsBefore + 2, { what: 'reconnect attempts' })
  t.equal(stream.current()?.generation, 1, 'generation 1 still serving')
  t.same(stream.current()?.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'])
  t.equal((await registry.getSingleMetric('ferry_config_stream_connected')?.get())?.values[0]?.value, 0)

  // Back on the same address, with the same root: the agent reconnects by itself and
  // gets the configuration as it is now.
  const second = await startController(t, args(first.address))
  await waitFor(() => snapshots.length === 2, { timeoutMs: 30_000, what: 'the newer configuration at the agent' })
  t.equal(stream.current()?.generation, 2)
  t.same(stream.current()?.peerAuthentications.map((p) => p.ref), ['prod/default'])
  t.same(stream.current()?.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'])
  // Its version 1 is the state it saved before it was killed; the directory as it is now is its version 2.
  t.match(stream.state(), { connected: true, version: 2 }, "the new controller's version 2")
  t.not(stream.state().controller, firstInstance, 'from the new controller process')
  await waitFor(() => second.output().includes('"msg":"configuration acknowledged"'), { what: 'the ACK in the new controller log' })
  t.ok(lines.some((l) => l.msg === 'configuration stream connected'))

  second.child.kill('SIGTERM')
  const [code] = await once(second.child, 'exit') as [number | null]
  t.equal(code, 0, 'a clean stop with a stream open')
})

async function httpGet (port: number, path: string): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    }).on('error', reject)
  })
}

async function stop (c: Running, signal: NodeJS.Signals): Promise<void> {
  const exited = once(c.child, 'exit')
  c.child.kill(signal)
  await exited
}

const BROKEN_DEV = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: broken, namespace: dev }
spec:
  rules: [{ from: [{ source: { principal: ["x"] } }] }]
`

// Guards the last good state across restarts, on both sides: the controller saves every
// version in its data directory and, restarted (SIGKILL) with bad objects present, serves
// the good rest — and the last valid version of an object broken while it was down —
// instead of freezing or dropping it; an agent restarted while the controller is down is
// ready at once from its saved configuration and enforces it, instead of denying every
// connection (no-config). Real `ferry controller` processes, real agents (loopback
// platform), real grpc-js and TLS.
t.test('restarts: the controller serves its saved state with bad objects present; an agent restarted while it is down enforces its own', async (t) => {
  // Nothing runs on n1, so the agent's readiness is about its configuration alone.
  const { dir, policies, tokenOf, args } = await controllerFiles(t, [namespaceObj('prod', { 'ferry.dev/mesh': 'enabled' }), podObj({ name: 'db', namespace: 'prod', node: 'n2', serviceAccountName: 'db', labels: { app: 'db' } })])
  writeFileSync(join(dir, 'token-n1'), tokenOf.get('n1') as string, { mode: 0o600 })
  const cache = join(dir, 'agent-state', 'config-cache.json')

  const first = await startController(t, args('127.0.0.1:0'))
  const agentArgs = ['--node', 'n1', '--cluster-file', join(dir, 'cluster.json'), '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0',
    '--ca-address', first.address, '--ca-root', first.rootCert, '--ca-token-file', join(dir, 'token-n1'), '--tunnel-port', '0',
    '--config-source', 'controller', '--config-cache', cache]
  const startAgent = async (): Promise<Agent> => {
    const agent = await Agent.start(parseAgentOptions(agentArgs), { platform: loopbackPlatform(new RecordingCapture()), log: captureLog().log, adminAuth: OPEN_DEBUG })
    t.teardown(async () => { await agent.close() })
    return agent
  }
  const denyDev = async (agent: Agent): Promise<any> => (await httpGet(agent.admin.adminPort, '/debug/authz?from=cluster.local/ns/dev/sa/web&to=prod/app=db:5432')).body
  const refs = async (agent: Agent): Promise<string[]> => ((await httpGet(agent.admin.adminPort, '/debug/config')).body.resources ?? []).map((r: { ref: string }) => r.ref)

  const agent1 = await startAgent()
  await waitFor(async () => (await httpGet(agent1.admin.readyPort, '/healthz/ready')).status === 200, { timeoutMs: 20_000, what: 'the agent ready' })
  t.match(await denyDev(agent1), { allowed: false, results: [{ explanation: { decision: { basis: 'deny-matched', policy: 'prod/deny-dev' } } }] })
  // A bad object in another namespace, and a good change beside it: the change goes through.
  writeAtomic(policies, 'bad.yaml', BROKEN_DEV)
  writeAtomic(policies, 'strict.yaml', STRICT_PROD)
  await waitFor(async () => (await httpGet(agent1.admin.adminPort, '/debug/config')).body.resources?.some((r: { ref: string }) => r.ref === 'prod/default'), { timeoutMs: 20_000, what: 'the good change at the agent' })
  t.match((await denyDev(agent1)).results[0].explanation.mtls, { mode: 'STRICT', scope: 'namespace', policy: 'prod/default' }, 'and enforced: prod\'s mode comes from it')
  await waitFor(() => existsSync(join(dir, 'ca', 'config-state.json')) && existsSync(cache), { what: 'both saved' })

  // The controller is killed; while it is down deny.yaml breaks too.
  await stop(first, 'SIGKILL')
  writeAtomic(policies, 'deny.yaml', DENY_DEV.replace('namespaces:', 'namespace:'))
  const second = await startController(t, args(first.address))
  t.match(second.output(), /"msg":"serving the saved configuration until the feed has read the current one"/)
  await waitFor(() => second.output().includes('"msg":"configuration object refused"') && second.output().includes('AuthorizationPolicy prod/deny-dev'), { what: 'the restarted controller refusing the broken deny-dev' })
  const refusedLine = second.output().split('\n').find((l) => l.includes('"msg":"configuration object refused"') && l.includes('prod/deny-dev')) as string
  t.match(JSON.parse(refusedLine), { inForce: 'earlier-version', note: /the earlier version .*deny\.yaml:\d+\) keeps applying/ }, 'its last valid version, from the saved state')
  await waitFor(async () => JSON.stringify((await httpGet(agent1.admin.adminPort, '/debug/config')).body.objects?.filter((o: any) => o.state === 'refused').map((o: any) => o.object).sort()) === '["AuthorizationPolicy dev/broken","AuthorizationPolicy prod/deny-dev"]',
    { timeoutMs: 40_000, what: 'the agent following the restarted controller' })
  t.same((await refs(agent1)).sort(), ['prod/default', 'prod/deny-dev'], 'the good rest, and deny-dev\'s last valid version')
  t.match(await denyDev(agent1), { allowed: false, results: [{ explanation: { decision: { basis: 'deny-matched', policy: 'prod/deny-dev' } } }] }, 'still enforced')
  await agent1.close()

  // The controller goes down again, and the agent restarts meanwhile: ready at once from
  // what it saved, enforcing it — not denying everything.
  await stop(second, 'SIGKILL')
  const agent2 = await startAgent()
  t.match((await httpGet(agent2.admin.readyPort, '/healthz/ready')).body.config, { ready: true, generation: 1 }, 'its configuration in force from the start')
  const ready = await waitFor(async () => { const r = await httpGet(agent2.admin.readyPort, '/healthz/ready'); return r.status === 200 ? r : null }, { timeoutMs: 5000, what: 'ready, with the controller down' })
  t.equal(ready.status, 200, `ready from the saved configuration: ${JSON.stringify(ready.body)}`)
  t.match(ready.body, { config: { ready: true, required: true, generation: 1 } })
  t.match((await httpGet(agent2.admin.adminPort, '/debug/config')).body, { origin: /^saved configuration of controller 127\.0\.0\.1:\d+ version \d+/ })
  t.same((await refs(agent2)).sort(), ['prod/default', 'prod/deny-dev'])
  const decision = await denyDev(agent2)
  t.match(decision, { allowed: false, results: [{ explanation: { decision: { basis: 'deny-matched', policy: 'prod/deny-dev' } } }] }, 'the last good policies decide')
  t.notOk(JSON.stringify(decision).includes('no-config'))
  t.match((await denyDev(agent2)).results, [{ explanation: { decision: { basis: 'deny-matched' } } }])
  const allowed = (await httpGet(agent2.admin.adminPort, '/debug/authz?from=cluster.local/ns/stage/sa/web&to=prod/app=db:5432')).body
  t.match(allowed, { allowed: true }, 'and allow what they allow')

  // The controller is back: the agent follows its stream again.
  const third = await startController(t, args(first.address))
  await waitFor(() => third.output().includes('"msg":"configuration acknowledged"'), { timeoutMs: 40_000, what: 'the restarted agent ACKing the controller' })
  t.same((await refs(agent2)).sort(), ['prod/default', 'prod/deny-dev'])
  await stop(third, 'SIGTERM')
})
