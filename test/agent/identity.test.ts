import t, { type Test } from 'tap'
import { renameSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { type CaHarness, startCa, tmpDir } from '../controller/harness'
import { listText, namespaceObj, podObj, type PodSpecLite } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { loopbackPlatform, RecordingCapture } from './loopback-platform'
import { waitFor } from '../helpers/wait'

// The agent's identities against a real controller (gRPC over TLS on loopback) and the
// loopback platform: one certificate per distinct identity of the enrolled pods,
// readiness held back until they are all in hand (and saying which are missing), the
// expiry gauge on the agent's /metrics, identities dropped with their last pod, and
// svidFor() for the data path. No root needed.

const EXPIRY = 'ferry_certificate_expiry_timestamp_seconds'
const id = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`

async function httpGet (port: number, path: string): Promise<{ status: number, body: any, text: string }> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => {
        let body: any = null
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body, text })
      })
    }).on('error', reject)
  })
}

/** spiffe_id label values of the expiry gauge. */
function gaugeIds (metrics: string): string[] {
  return [...metrics.matchAll(new RegExp(`^${EXPIRY}\\{spiffe_id="([^"]+)"\\} \\d+$`, 'gm'))].map((m) => m[1]).sort()
}

const PODS: PodSpecLite[] = [
  { name: 'web', uid: 'u-web', serviceAccountName: 'web', ips: ['10.244.1.2'] },
  { name: 'web-2', uid: 'u-web-2', serviceAccountName: 'web', ips: ['10.244.1.3'] },
  { name: 'api', uid: 'u-api', serviceAccountName: 'api', ips: ['10.244.1.4'] },
  { name: 'db', uid: 'u-db', namespace: 'data', node: 'n2', serviceAccountName: 'db', ips: ['10.244.2.2'] }
]

async function setup (t: Test): Promise<{ ca: CaHarness, dir: string, agentArgs: string[], writeAgentPods: (pods: PodSpecLite[]) => void }> {
  const dir = tmpDir(t, 'ferry-agent-id-')
  const ca = await startCa(t, { dir, pods: PODS })
  const tokenFile = join(dir, 'n1.token')
  writeFileSync(tokenFile, `${ca.tokenOf.get('n1') as string}\n`, { mode: 0o600 })
  const clusterFile = join(dir, 'agent-cluster.json')
  const writeAgentPods = (pods: PodSpecLite[]): void => {
    const objs = pods.map((p) => {
      writeFileSync(join(dir, `netns-${p.name}`), '')
      return podObj({ ...p, annotations: { 'lab.ferry.dev/netns': join(dir, `netns-${p.name}`), 'lab.ferry.dev/cgroup': `/lab/${p.name}` } })
    })
    writeFileSync(`${clusterFile}.tmp`, listText([namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), namespaceObj('data', { 'ferry.dev/mesh': 'enabled' }), ...objs]))
    renameSync(`${clusterFile}.tmp`, clusterFile)
  }
  writeAgentPods(PODS)
  const agentArgs = ['--node', 'n1', '--cluster-file', clusterFile, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0',
    '--ca-address', ca.controller.address, '--ca-root', join(ca.dataDir, 'root-cert.pem'), '--ca-token-file', tokenFile, '--cert-ttl', '1h', '--tunnel-port', '0']
  return { ca, dir, agentArgs, writeAgentPods }
}

t.test('agent with a CA: not ready until each identity of its enrolled pods has a certificate; one per identity; gauge on /metrics; dropped with the last pod', async (t) => {
  const { ca, agentArgs, writeAgentPods } = await setup(t)
  // The controller is down when the agent starts: pods are enrolled, certificates are not.
  await ca.stop()
  const capture = new RecordingCapture()
  const { log, lines } = captureLog()
  const agent = await Agent.start(parseAgentOptions(agentArgs), { platform: loopbackPlatform(capture), log })
  t.teardown(async () => { await agent.close() })
  const { readyPort, adminPort } = agent.admin

  await waitFor(() => capture.enrolledUids().length === 3, { timeoutMs: 3000, what: 'n1\'s pods enrolled' })
  await waitFor(() => lines.some((l) => l.msg === 'certificate request failed; retrying'), { timeoutMs: 5000, what: 'a failed request' })
  const waiting = await httpGet(readyPort, '/healthz/ready')
  t.equal(waiting.status, 503, 'enrolled but without certificates: not ready')
  t.same(waiting.body.enrolled, ['u-api', 'u-web', 'u-web-2'])
  t.same(waiting.body.pending, [], 'no pod is waiting for enrollment')
  t.equal(waiting.body.certificates.ready, false)
  t.same(waiting.body.certificates.identities, [id('app', 'api'), id('app', 'web')], 'one identity for two web pods')
  t.same(waiting.body.certificates.pending.map((p: any) => p.spiffeId), [id('app', 'api'), id('app', 'web')])
  t.ok(waiting.body.certificates.pending.some((p: any) => p.state === 'requesting' && p.code === 'FERRY_ERR_CA_UNAVAILABLE' && p.attempts >= 1), 'pending with the reason of the last failure')
  t.match(lines.find((l) => l.msg === 'certificate request failed; retrying'), { component: 'identity', err: { code: 'FERRY_ERR_CA_UNAVAILABLE' } }, 'retries are logged with their code')
  t.same(gaugeIds((await httpGet(adminPort, '/metrics')).text), [], 'no gauge without a certificate')

  // The controller comes up: the agent recovers on its own.
  await ca.restart()
  await waitFor(() => agent.identity?.certificates(agent.enroller.enrolledPods().map((e) => e.plan.pod)).ready === true, { timeoutMs: 15_000, what: 'certificates' })
  const ready = await httpGet(readyPort, '/healthz/ready')
  t.equal(ready.status, 200, JSON.stringify(ready.body))
  t.same(ready.body.certificates, { ready: true, identities: [id('app', 'api'), id('app', 'web')], pending: [], failing: [] })
  const metrics = (await httpGet(adminPort, '/metrics')).text
  t.same(gaugeIds(metrics), [id('app', 'api'), id('app', 'web')], 'an expiry gauge for exactly the node\'s identities')
  const svid = agent.identity?.svidFor(id('app', 'web'))
  t.equal(svid?.spiffeId.uri, id('app', 'web'), 'svidFor gives the certificate to present')
  const gauge = Number(new RegExp(`^${EXPIRY}\\{spiffe_id="${id('app', 'web')}"\\} (\\d+)$`, 'm').exec(metrics)?.[1])
  t.equal(gauge, Math.floor((svid?.notAfter ?? 0) / 1000), 'the gauge is the served certificate\'s notAfter')
  t.ok(gauge * 1000 - Date.now() > 3_500_000, 'with the lifetime asked for (1h)')
  t.equal(agent.identity?.svidFor(id('data', 'db')), null, 'nothing for an identity of another node')
  const web2 = agent.enroller.enrolledPods().find((e) => e.plan.pod.name === 'web-2')
  t.equal(web2 === undefined ? '' : agent.identity?.spiffeIdOf(web2.plan.pod), id('app', 'web'))
  t.equal(lines.filter((l) => l.msg === 'identity added: requesting a certificate').length, 2, 'each identity added once')

  // api is re-enrolled (its address changed): its identity stays, with the same certificate.
  const apiSerial = agent.identity?.svidFor(id('app', 'api'))?.serial
  const enrolledBefore = lines.filter((l) => l.msg === 'pod enrolled' && l.uid === 'u-api').length
  writeAgentPods(PODS.map((p) => p.name === 'api' ? { ...p, ips: ['10.244.1.9'] } : p))
  await waitFor(() => lines.filter((l) => l.msg === 'pod enrolled' && l.uid === 'u-api').length > enrolledBefore, { timeoutMs: 3000, what: 'api re-enrolled' })
  await agent.enroller.settled()
  t.equal(agent.identity?.svidFor(id('app', 'api'))?.serial, apiSerial, 'a re-enrolled pod keeps its identity\'s certificate')
  t.notOk(lines.some((l) => l.msg === 'identity removed: its last pod left the node'), 'no identity dropped meanwhile')

  // web-2 leaves: web stays (web still runs). api leaves: its identity and gauge go.
  writeAgentPods(PODS.filter((p) => p.name !== 'web-2'))
  await waitFor(() => !capture.enrolledUids().includes('u-web-2'), { timeoutMs: 3000, what: 'web-2 unenrolled' })
  t.ok(agent.identity?.svidFor(id('app', 'web')) !== null, 'web keeps its certificate while a web pod runs')
  writeAgentPods(PODS.filter((p) => p.name !== 'web-2' && p.name !== 'api'))
  await waitFor(() => lines.some((l) => l.msg === 'identity removed: its last pod left the node'), { timeoutMs: 3000, what: 'api removed' })
  t.match(lines.find((l) => l.msg === 'identity removed: its last pod left the node'), { spiffeId: id('app', 'api') })
  t.same(gaugeIds((await httpGet(adminPort, '/metrics')).text), [id('app', 'web')], 'the gauge of a removed identity is gone')
  t.equal(agent.identity?.svidFor(id('app', 'api')), null)
  t.equal((await httpGet(readyPort, '/healthz/ready')).status, 200)
})

t.test('agent with a CA: an unreadable --ca-root or token file, or one with no certificate, is FERRY_ERR_CONFIG at start, before capture opens', async (t) => {
  const { dir, agentArgs } = await setup(t)
  const args = (root: string): string[] => agentArgs.map((a, i) => agentArgs[i - 1] === '--ca-root' ? root : a)
  const notPem = join(dir, 'not-pem')
  writeFileSync(notPem, 'hello')
  for (const [root, re] of [[join(dir, 'missing.pem'), /--ca-root .*missing\.pem: cannot read/], [notPem, /--ca-root .*not-pem: no PEM certificate in it/]] as const) {
    const capture = new RecordingCapture()
    await t.rejects(Agent.start(parseAgentOptions(args(root)), { platform: loopbackPlatform(capture), log: captureLog().log }), { code: 'FERRY_ERR_CONFIG', message: re })
    t.same(capture.calls, [], 'capture was never opened')
  }
  const capture = new RecordingCapture()
  const badToken = agentArgs.map((a, i) => agentArgs[i - 1] === '--ca-token-file' ? join(dir, 'no-token') : a)
  await t.rejects(Agent.start(parseAgentOptions(badToken), { platform: loopbackPlatform(capture), log: captureLog().log }), { code: 'FERRY_ERR_CONFIG', message: /--ca-token-file .*no-token: cannot read/ })
})

t.test('agent without a CA: readiness as before, no certificates field, no gauge', async (t) => {
  const { agentArgs } = await setup(t)
  const capture = new RecordingCapture()
  const agent = await Agent.start(parseAgentOptions(agentArgs.slice(0, agentArgs.indexOf('--ca-address'))), { platform: loopbackPlatform(capture), log: captureLog().log })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => capture.enrolledUids().length === 3, { timeoutMs: 3000, what: 'enrolled' })
  const r = await httpGet(agent.admin.readyPort, '/healthz/ready')
  t.equal(r.status, 200)
  t.notOk('certificates' in r.body)
  t.equal(agent.identity, null)
  t.same(gaugeIds((await httpGet(agent.admin.adminPort, '/metrics')).text), [])
})
