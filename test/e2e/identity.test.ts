import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Prober } from '../../src/lab/probe'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { labDir, nodeLog } from '../helpers/lab'
import { everythingLeft } from '../lab/helpers'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// Workload identity end to end, for real: a two-node lab whose controller (the CA) runs
// in the underlay namespace and whose agents get certificates from it over the
// underlay, with a 6 s certificate lifetime so that rotation happens while we watch.
// Agents' readiness and /metrics are read from inside each node's namespace; the node
// authorization check is a real CA client run inside node1's namespace with node1's
// token; the controller is stopped and started with `ferry lab restart --controller`.

const lab = uniqueLabName('e2eid')
const TTL = '6s'
const id = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`
const EXPECTED: Record<string, string[]> = {
  node1: [id('app', 'client'), id('app', 'web')],
  node2: [id('app', 'web'), id('data', 'db')]
}

// Two client pods share one identity; web runs on both nodes; plain/outsider is not meshed.
const pod = (ns: string, name: string, node: string, sa: string): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  nodeName: ${node}\n  serviceAccountName: ${sa}\n  containers: [{name: main, command: [sleep, infinity]}]\n`
const MANIFEST = [
  'apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n',
  'apiVersion: v1\nkind: Node\nmetadata: {name: node2}\n',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: app, labels: {ferry.dev/mesh: enabled}}\n',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: data, labels: {ferry.dev/mesh: enabled}}\n',
  'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n',
  pod('app', 'client', 'node1', 'client'),
  pod('app', 'client-2', 'node1', 'client'),
  pod('app', 'web', 'node1', 'web'),
  pod('plain', 'outsider', 'node1', 'default'),
  pod('app', 'web-2', 'node2', 'web'),
  pod('data', 'db', 'node2', 'db')
].join('---\n')

const dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-identity-'))
const prober = new Prober()
let state: any
let downDone = false

t.before(async () => {
  writeFileSync(join(dir, 'lab.yaml'), MANIFEST)
  await ferryOk(['lab', 'up', '--name', lab, '--cert-ttl', TTL, join(dir, 'lab.yaml')], { timeoutMs: 120_000 })
  state = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
})
t.teardown(async () => {
  prober.close()
  if (!downDone) await ferry(['lab', 'down', lab], { timeoutMs: 60_000 })
  rmSync(dir, { recursive: true, force: true })
})

const netnsOf = (node: string): string => `/var/run/netns/${state.plan.nodes.find((n: any) => n.name === node).netns as string}`

async function readiness (node: string): Promise<{ status: number, body: any }> {
  const r = await prober.httpGet(netnsOf(node), '127.0.0.1', 15021, '/healthz/ready', 2000)
  if (r === null) throw new Error(`no readiness answer from ${node}`)
  return { status: r.status, body: JSON.parse(r.body) }
}

/** spiffe_id → value of the expiry gauge on the node's /metrics. */
async function expiryGauges (node: string): Promise<Map<string, number>> {
  const r = await prober.httpGet(netnsOf(node), '127.0.0.1', 15020, '/metrics', 2000)
  if (r === null || r.status !== 200) throw new Error(`no /metrics from ${node}`)
  const out = new Map<string, number>()
  for (const m of r.body.matchAll(/^ferry_certificate_expiry_timestamp_seconds\{spiffe_id="([^"]+)"\} (\d+)$/gm)) out.set(m[1], Number(m[2]))
  return out
}

function controllerLog (): any[] {
  const file = join(labDir(lab), 'logs', 'controller.log')
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
}

/**
 * A CertificateSigningRequest for `spiffeId`, sent by a real CA client run inside `node`'s
 * network namespace with `tokenOf`'s token file, as that node's agent would send it.
 */
async function caRequest (node: string, tokenOf: string, spiffeId: string): Promise<{ ok: boolean, spiffeId?: string, code?: string, message?: string }> {
  const ca = state.plan.controller
  const token = state.plan.nodes.find((n: any) => n.name === tokenOf).caTokenFile
  const identity = join(REPO, 'dist', 'src', 'identity')
  const script = `
    const { readFileSync } = require('node:fs')
    const { CaClient, tokenFromFile } = require(${JSON.stringify(join(identity, 'ca-client.js'))})
    const { generateWorkloadKey } = require(${JSON.stringify(join(identity, 'keys.js'))})
    const { createCsr } = require(${JSON.stringify(join(identity, 'csr.js'))})
    const { parseSpiffeId } = require(${JSON.stringify(join(identity, 'spiffe-id.js'))})
    const { svidFromChain } = require(${JSON.stringify(join(identity, 'svid.js'))})
    const [address, root, tokenFile, uri] = process.argv.slice(1)
    const client = new CaClient({ address, caRootsPem: readFileSync(root, 'utf8'), token: tokenFromFile(tokenFile), callTimeoutMs: 5000 })
    ;(async () => {
      const id = parseSpiffeId(uri)
      const key = await generateWorkloadKey()
      const chain = await client.createCertificate(await createCsr(key, id), 60)
      return { ok: true, spiffeId: svidFromChain(chain, key, id, Date.now()).spiffeId.uri }
    })().catch((e) => ({ ok: false, code: e.code, message: e.message }))
      .then((r) => { process.stdout.write(JSON.stringify(r)); client.close() })`
  const r = await ferry(['lab', 'exec', '--lab', lab, '--node', node, '--', process.execPath, '-e', script, `${ca.address as string}:${ca.port as number}`, ca.rootCert, token, spiffeId], { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`CA client in ${node} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

t.test('each agent is ready with a certificate for each identity of its enrolled pods, got from the lab\'s controller', async (t) => {
  for (const node of ['node1', 'node2']) {
    const r = await readiness(node)
    t.equal(r.status, 200, `${node} ready`)
    t.same(r.body.certificates, { ready: true, identities: EXPECTED[node], pending: [], failing: [] }, `${node}: one certificate per distinct identity, none pending`)
  }
  const issued = controllerLog().filter((l) => l.msg === 'certificate issued')
  for (const node of ['node1', 'node2']) {
    const ip = state.plan.nodes.find((n: any) => n.name === node).ipv4
    const mine = issued.filter((l) => l.node === node)
    t.same([...new Set(mine.map((l) => l.identity))].sort(), EXPECTED[node], `the controller issued ${node} exactly its identities`)
    t.ok(mine.every((l) => l.peer.startsWith(`${ip as string}:`)), `over the underlay, from ${node}'s address`)
  }
  t.ok(existsSync(state.plan.controller.rootCert), 'the root the agents trust is in the lab\'s state dir')
  for (const file of [state.plan.controller.tokensFile, ...state.plan.nodes.map((n: any) => n.caTokenFile)]) {
    t.equal(statSync(file).mode & 0o777, 0o600, `${file as string} is 0600`)
  }
})

t.test('/metrics of each node has an expiry gauge for exactly the identities of its pods', async (t) => {
  for (const node of ['node1', 'node2']) {
    const gauges = await expiryGauges(node)
    t.same([...gauges.keys()].sort(), EXPECTED[node], node)
    for (const [spiffeId, notAfter] of gauges) t.ok(notAfter * 1000 > Date.now() - 1000 && notAfter * 1000 < Date.now() + 7000, `${spiffeId}: notAfter within the 6 s lifetime`)
  }
})

t.test('node authorization: node1\'s token cannot obtain the identity of a pod on node2, and the controller logs the refusal', async (t) => {
  const own = await caRequest('node1', 'node1', id('app', 'client'))
  t.same(own, { ok: true, spiffeId: id('app', 'client') }, 'control: node1 may obtain the identity of its own pod')
  const other = await caRequest('node1', 'node1', id('data', 'db'))
  t.equal(other.ok, false)
  t.equal(other.code, 'FERRY_ERR_CA_REFUSED')
  t.match(other.message, /PERMISSION_DENIED: FERRY_ERR_AUTHZ: node node1 may not obtain spiffe:\/\/cluster\.local\/ns\/data\/sa\/db: .*\(such pods run on node2\)/)
  const refusal = await waitFor(() => controllerLog().find((l) => l.msg === 'certificate request refused' && l.identity === id('data', 'db')), { what: 'the refusal in the controller log' })
  t.match(refusal, { level: 40, node: 'node1', principal: 'lab-node:node1', code: 'FERRY_ERR_AUTHZ', status: 'PERMISSION_DENIED', peer: new RegExp(`^${(state.plan.nodes[0].ipv4 as string).replace(/\./g, '\\.')}:`) })
  const theirs = await caRequest('node2', 'node2', id('data', 'db'))
  t.same(theirs, { ok: true, spiffeId: id('data', 'db') }, 'node2 may')
})

t.test('with a 6 s lifetime the certificates rotate while the lab runs: the gauge advances', async (t) => {
  const before = await expiryGauges('node1')
  const advanced = await waitFor(async () => {
    const now = await expiryGauges('node1')
    return EXPECTED.node1.every((i) => (now.get(i) ?? 0) > (before.get(i) ?? Infinity)) ? now : null
  }, { timeoutMs: 10_000, intervalMs: 200, what: 'every expiry gauge of node1 to advance' })
  t.same([...advanced.keys()].sort(), EXPECTED.node1, 'still exactly node1\'s identities')
  t.ok(nodeLog(lab, 'node1').some((l) => l.msg === 'certificate in use' && l.rotated === true && EXPECTED.node1.includes(l.spiffeId)), 'rotations are logged')
  t.equal((await readiness('node1')).status, 200, 'ready throughout')
})

t.test('controller stopped: agents keep their certificates and retry; controller back: they recover without a restart', async (t) => {
  const agentPids = state.plan.nodes.map((n: any) => state.pids[`node/${n.name as string}`])
  const logged = (node: string): number => nodeLog(lab, node).length
  const mark = { node1: logged('node1'), node2: logged('node2') }
  const since = (node: 'node1' | 'node2'): any[] => nodeLog(lab, node).slice(mark[node])
  const restart = ferry(['lab', 'restart', '--lab', lab, '--controller', '--down-for', '14s'], { timeoutMs: 60_000 })
  // Even if a check below fails: the restart finishes before the lab is taken down, or it
  // would start the controller again in a lab that is gone.
  t.teardown(async () => { await restart })

  // While it is down: renewals fail and are retried with their code; the certificates in
  // hand stay (the gauge keeps its value); once they expire, the node is not ready.
  // The windows below are generous for a loaded machine (the CLI itself takes a while to
  // stop the controller); the down time leaves room for both waits.
  const held = await expiryGauges('node1')
  await waitFor(() => ['node1', 'node2'].every((n) => since(n as 'node1').some((l) => l.msg === 'certificate request failed; retrying')), { timeoutMs: 12_000, what: 'retries on both nodes' })
  const retry = since('node1').find((l) => l.msg === 'certificate request failed; retrying')
  t.match(retry, { level: 40, component: 'identity', err: { code: 'FERRY_ERR_CA_UNAVAILABLE' }, attempt: 1 }, 'the retry is logged with its code')
  t.ok(retry.servingUntil !== null, 'while serving the certificate in hand')
  const during = await expiryGauges('node1')
  t.same([...during.keys()].sort(), EXPECTED.node1, 'the certificates are kept')
  t.ok(EXPECTED.node1.every((i) => during.get(i) === held.get(i) || (during.get(i) ?? 0) > (held.get(i) ?? 0)), 'and not taken away')
  const expired = await waitFor(async () => {
    const r = await readiness('node1')
    return r.status === 503 && r.body.certificates.pending.length > 0 ? r : null
  }, { timeoutMs: 12_000, intervalMs: 200, what: 'node1 unready once its certificates expire' })
  t.match(expired.body.certificates.pending[0], { state: 'expired', code: 'FERRY_ERR_CA_UNAVAILABLE' }, 'readiness says which identity and why')

  const r = await restart
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /controller restarted/)
  // The agents retry on the certificate backoff (1 s doubling, up to half of it random):
  // after ~15 s down the next attempt may come up to 16 s after the controller is back,
  // and a loaded machine adds the request itself and the readiness poll.
  for (const node of ['node1', 'node2'] as const) {
    await waitFor(async () => (await readiness(node)).status === 200, { timeoutMs: 40_000, intervalMs: 250, what: `${node} ready again` })
    t.ok(since(node).some((l) => l.msg === 'certificate in use' && l.rotated === true), `${node} got new certificates`)
    const after = await expiryGauges(node)
    t.ok(EXPECTED[node].every((i) => (after.get(i) ?? 0) > Date.now() / 1000), `${node}: every gauge is in the future again`)
  }
  const now = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
  t.same(state.plan.nodes.map((n: any) => now.pids[`node/${n.name as string}`]), agentPids, 'the same agents: no restart')
  t.ok(agentPids.every((pid: number) => existsSync(`/proc/${pid}`)), 'still running')
  const log = controllerLog()
  t.ok(log.filter((l) => l.msg === 'loaded the CA root').length >= 1, 'the new controller reused the lab\'s root')
})

t.test('down removes the controller with the rest of the lab', async (t) => {
  const now = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
  const pids: number[] = Object.values(now.pids)
  t.ok(existsSync(`/proc/${now.pids.controller as number}`), 'the controller runs before down')
  await ferryOk(['lab', 'down', lab], { timeoutMs: 60_000 })
  downDone = true
  t.same(everythingLeft(lab, pids), [], 'no process, cgroup, namespace or state (tokens, CA key) left')
})
