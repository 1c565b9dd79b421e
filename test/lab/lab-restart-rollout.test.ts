import t from 'tap'
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'
import { agentPids, labDir, nodeLog, pod } from '../helpers/lab'
import { HANDED_OFF_MESSAGE } from '../../src/handoff'

// `ferry lab restart --node NODE --signal TERM`: the DaemonSet's surge rollout played on
// a real two-node mTLS lab (test/fixtures/two-node-mtls.yaml). Load runs through node1
// while its agent is replaced — new connections across the tunnel, keep-alive ones to a
// pod on the same node, and keep-alive ones coming in from node2 — and the clients, not
// the agents, count what fails. The new agent must take the old one's listening sockets
// over through <lab dir>/node1/handoff.sock before the old one stops accepting.

const lab = uniqueLabName('rollout')
const fixture = join(REPO, 'test/fixtures/two-node-mtls.yaml')
const LOAD_MS = 25_000
let state: any

t.setTimeout(300_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, fixture], { timeoutMs: 150_000 })
  state = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

const pinRoot = (node: string): string => state.plan.nodes.find((n: any) => n.name === node).pinRoot
const handoffSocket = (node: string): string => join(labDir(lab), node, 'handoff.sock')

interface Load { requests: number, failures: number, connections: number, durationMs: number, errors: unknown[] }

/** test/fixtures/load-client.js in a pod: GETs for `ms`, a new connection every `perConnection` requests. */
async function load (namespace: string, name: string, url: string, ms: number, perConnection: number): Promise<Load> {
  const r = await ferry(['lab', 'exec', '--lab', lab, '-n', namespace, name, '--',
    process.execPath, join(REPO, 'test/fixtures/load-client.js'), url, String(ms), '200000', String(perConnection)], { timeoutMs: ms + 60_000 })
  if (r.code !== 0) throw new Error(`load client in ${namespace}/${name} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Load
}

/** Cross-node new connections, same-node keep-alive, and inbound keep-alive from node2, all through node1, for `ms`. */
function loads (ms: number): Promise<Record<string, Load>> {
  const neighbour = pod(lab, 'app', 'neighbour').ips[0]
  const runs = {
    'node1 → node2, a new connection per request': load('app', 'client', 'http://server.app.svc.cluster.local:8080', ms, 1),
    'node1 → node1, keep-alive (20 requests a connection)': load('app', 'client', `http://${neighbour}:8080`, ms, 20),
    'node2 → node1, keep-alive (20 requests a connection)': load('app', 'server', `http://${neighbour}:8080`, ms, 20)
  }
  return Promise.all(Object.entries(runs).map(async ([k, p]) => [k, await p] as const)).then(Object.fromEntries)
}

t.test('a new agent that cannot take over is stopped, the restart fails saying why, and the old agent serves on', async (t) => {
  // Guards the lab's part: the old agent is signalled only once the new one has taken
  // over and is ready. The handoff socket is moved away, so the new agent finds nobody
  // to take over from and cannot bind the node's ports beside the old one.
  const [old] = agentPids(pinRoot('node1'))
  t.ok(old !== undefined, 'node1 has an agent')
  const socket = handoffSocket('node1')
  const moved = existsSync(socket)
  if (moved) renameSync(socket, `${socket}.away`)
  t.teardown(() => { if (moved) renameSync(`${socket}.away`, socket) })
  const during = loads(8_000)
  const r = await ferry(['lab', 'restart', '--lab', lab, '--node', 'node1', '--signal', 'TERM', '--timeout', '20s'], { timeoutMs: 90_000 })
  t.not(r.code, 0, 'the restart fails')
  t.match(r.stderr, /the new agent of node node1 \(taking over from pid \d+ through .*handoff\.sock\)/, `it says which agent failed: ${r.stderr.slice(0, 400)}`)
  t.same(agentPids(pinRoot('node1')), [old], 'the old agent runs on, alone')
  t.equal(JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8')).pids['node/node1'], old, 'the lab still records the old agent')
  for (const [what, l] of Object.entries(await during)) {
    t.equal(l.failures, 0, `${what}: ${l.requests} requests, none failed (${JSON.stringify(l.errors)})`)
  }
})

t.test('restart --signal TERM: the new agent takes over, the old one drains and exits, 0 failed requests', async (t) => {
  const [old] = agentPids(pinRoot('node1'))
  const logStart = nodeLog(lab, 'node1').length
  const during = loads(LOAD_MS)
  await new Promise((resolve) => setTimeout(resolve, 3_000)) // the loads are under way
  const out = await ferryOk(['lab', 'restart', '--lab', lab, '--node', 'node1', '--signal', 'TERM', '--timeout', '60s'], { timeoutMs: 120_000 })
  const newPid = Number(/new pid (\d+)/.exec(out)?.[1])
  t.ok(newPid > 0 && newPid !== old, `a new agent: ${out.trim()}`)
  const results = await during
  for (const [what, l] of Object.entries(results)) {
    t.equal(l.failures, 0, `${what}: ${l.requests} requests on ${l.connections} connections, none failed, refused or reset (${JSON.stringify(l.errors)})`)
    t.ok(l.requests >= 50, `${what}: a real load`)
  }
  t.same(agentPids(pinRoot('node1')), [newPid], 'only the new agent runs')
  t.equal(JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8')).pids['node/node1'], newPid, 'the lab records the new agent')
  const lines = nodeLog(lab, 'node1').slice(logStart)
  t.ok(lines.some((l) => l.msg === HANDED_OFF_MESSAGE && l.pid === old), 'the old agent handed its sockets over')
  const accessByNew = lines.filter((l) => l.msg === 'access' && l.pid === newPid).length
  t.ok(accessByNew > 0, `the new agent carried connections (${accessByNew})`)
  // And the node keeps working with the new agent alone.
  const after = await loads(3_000)
  for (const [what, l] of Object.entries(after)) t.equal(l.failures, 0, `after the rollout, ${what}: none failed`)
  // (Not the file's inode: a filesystem may give the new file the old one's number.)
  await waitFor(() => existsSync(handoffSocket('node1')) && nodeLog(lab, 'node1').slice(logStart).some((l) => l.msg === 'handoff socket listening' && l.pid === newPid), { what: 'the new agent to listen on the handoff socket itself' })
})
