import t from 'tap'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { ConfigStream } from '../../src/agent/config-stream'
import { createLabNodeTokens, writeLabNodeTokens } from '../../src/controller/lab-node-tokens'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { listText, podObj } from '../discovery/fixture'
import { FERRY, waitFor } from '../helpers/cli'
import { captureLog, tmpDir } from './harness'

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

t.test('SIGKILL the controller: the agent keeps its configuration, reconnects and catches up', async (t) => {
  const dir = tmpDir(t)
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  writeAtomic(policies, 'deny.yaml', DENY_DEV)
  const { document, tokenOf } = createLabNodeTokens(['n1'])
  await writeLabNodeTokens(join(dir, 'tokens.json'), document)
  writeFileSync(join(dir, 'cluster.json'), listText([podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' })]))
  const args = (listen: string): string[] => ['--data-dir', join(dir, 'ca'), '--listen', listen, '--lab-nodes', join(dir, 'tokens.json'),
    '--cluster-file', join(dir, 'cluster.json'), '--config-dir', policies]

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
  t.match(stream.state(), { connected: true, version: 1 }, "the new controller's version 1")
  t.not(stream.state().controller, firstInstance, 'from the new controller process')
  await waitFor(() => second.output().includes('"msg":"configuration acknowledged"'), { what: 'the ACK in the new controller log' })
  t.ok(lines.some((l) => l.msg === 'configuration stream connected'))

  second.child.kill('SIGTERM')
  const [code] = await once(second.child, 'exit') as [number | null]
  t.equal(code, 0, 'a clean stop with a stream open')
})
