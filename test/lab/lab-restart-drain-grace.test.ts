import t from 'tap'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { join } from 'node:path'
import { DRAIN_CLOSED_MESSAGE, DRAINING_MESSAGE } from '../../src/agent/agent'
import { formatDuration } from '../../src/identity/duration'
import { FERRY, REPO, ferry, ferryOk } from '../helpers/cli'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'
import { agentPids, labDir, nodeLog, pod } from '../helpers/lab'
import { readFileSync } from 'node:fs'

// The end of the drain grace in `ferry lab restart --node node1 --signal TERM` (the
// DaemonSet's surge rollout), on a real two-node mTLS lab (test/fixtures/two-node-mtls.yaml)
// whose agents run with a short --drain-grace. Three connections through node1's agent
// outlive the grace — same-node, out across the tunnel, and in across the tunnel — each a
// test/fixtures/hold-client.js asking a request every 250 ms on one connection. The old
// agent carries them on after the new one has taken over, and when the grace that
// started with its SIGTERM runs out it resets them (a cut stream must not look complete
// to a client, so a reset, not a FIN) and logs how many. Meanwhile new connections keep
// succeeding through the new agent.
//
// Guards Agent.drain's end (src/agent/agent.ts, WorkerSet.closeConnections,
// DataPlane's 'close-connections'): without it the connections of an agent that runs
// the data path on its main thread end only when the process exits, with a FIN, and
// uncounted; and the tunnel server's own grace timer after the handoff (gone now) cut
// streams coming in across the tunnel before the drain's grace was over.

const lab = uniqueLabName('drain')
const fixture = join(REPO, 'test/fixtures/two-node-mtls.yaml')
const GRACE_MS = 5_000
const LOAD_MS = 15_000
let state: any

t.setTimeout(300_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, '--drain-grace', formatDuration(GRACE_MS), fixture], { timeoutMs: 150_000 })
  state = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

const pinRoot = (node: string): string => state.plan.nodes.find((n: any) => n.name === node).pinRoot

interface HoldEvent { event: 'open' | 'closed' | 'timeout', at: number, how?: string, answers?: number, lastAnswerAt?: number | null }

/** test/fixtures/hold-client.js in a pod, through `ferry lab exec`: its events as they come. */
class Holder {
  readonly events: HoldEvent[] = []
  private readonly child: ChildProcessWithoutNullStreams
  private buf = ''
  private stderr = ''

  constructor (readonly what: string, namespace: string, name: string, host: string, port: number) {
    this.child = spawn(process.execPath, [FERRY, 'lab', 'exec', '--lab', lab, '-n', namespace, name, '--',
      process.execPath, join(REPO, 'test/fixtures/hold-client.js'), host, String(port), '250', '180000'], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdout.on('data', (c: Buffer) => {
      this.buf += c.toString()
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i)
        this.buf = this.buf.slice(i + 1)
        try { this.events.push(JSON.parse(line)) } catch {}
      }
    })
    this.child.stderr.on('data', (c: Buffer) => { this.stderr += c.toString() })
  }

  async event (name: HoldEvent['event'] | 'end', timeoutMs: number): Promise<HoldEvent> {
    return await waitFor(() => this.events.find((e) => name === 'end' ? e.event !== 'open' : e.event === name),
      { timeoutMs, intervalMs: 50, what: `${this.what}: event ${name} (events ${JSON.stringify(this.events)}; stderr ${this.stderr.slice(-500)})` })
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('close', resolve))
    this.child.kill('SIGTERM')
    await exited
  }
}

interface Load { requests: number, failures: number, connections: number, durationMs: number, errors: unknown[] }

/** test/fixtures/load-client.js in a pod: a new connection per GET, for `ms`. */
async function load (namespace: string, name: string, url: string, ms: number): Promise<Load> {
  const r = await ferry(['lab', 'exec', '--lab', lab, '-n', namespace, name, '--',
    process.execPath, join(REPO, 'test/fixtures/load-client.js'), url, String(ms), '200000', '1'], { timeoutMs: ms + 60_000 })
  if (r.code !== 0) throw new Error(`load client in ${namespace}/${name} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Load
}

t.test('restart --signal TERM: connections that outlive the drain grace are reset at its end and counted; new ones succeed meanwhile', async (t) => {
  const neighbour = pod(lab, 'app', 'neighbour').ips[0]
  const holders = [
    new Holder('node1 → node1 (same node)', 'app', 'client', neighbour, 8080),
    new Holder('node1 → node2 (out through the tunnel)', 'app', 'client', 'server.app.svc.cluster.local', 8080),
    new Holder('node2 → node1 (in through the tunnel)', 'app', 'server', neighbour, 8080)
  ]
  t.teardown(async () => { await Promise.all(holders.map(async (h) => { await h.stop() })) })
  for (const h of holders) await h.event('open', 30_000)

  const [old] = agentPids(pinRoot('node1'))
  t.ok(old !== undefined, 'node1 has an agent')
  const during = Promise.all([
    load('app', 'client', 'http://server.app.svc.cluster.local:8080', LOAD_MS),
    load('app', 'client', `http://${neighbour}:8080`, LOAD_MS),
    load('app', 'server', `http://${neighbour}:8080`, LOAD_MS)
  ])
  await new Promise((resolve) => setTimeout(resolve, 1_000)) // the loads are under way
  const out = await ferryOk(['lab', 'restart', '--lab', lab, '--node', 'node1', '--signal', 'TERM', '--timeout', '60s'], { timeoutMs: 120_000 })
  const newPid = Number(/new pid (\d+)/.exec(out)?.[1])
  t.ok(newPid > 0 && newPid !== old, `a new agent: ${out.trim()}`)

  const oldLines = nodeLog(lab, 'node1').filter((l) => l.pid === old)
  const draining = oldLines.find((l) => l.msg === DRAINING_MESSAGE)
  t.ok(draining !== undefined, 'the old agent began its drain (its SIGTERM): the grace period starts')
  const graceEnd = (draining?.time as number) + GRACE_MS
  for (const h of holders) {
    const end = await h.event('end', 30_000)
    t.equal(end.event, 'closed', `${h.what}: closed by the agent, not left open`)
    t.match(end.how, /^(ECONNRESET|EPIPE)$/, `${h.what}: reset, not ended as if complete (${String(end.how)})`)
    t.ok(end.at >= graceEnd, `${h.what}: closed once the grace was over, not before (${end.at - graceEnd} ms after its end)`)
    t.ok((end.lastAnswerAt ?? 0) > (draining?.time as number), `${h.what}: answered during the grace (${String(end.answers)} answers)`)
  }
  const closed = oldLines.find((l) => l.msg === DRAIN_CLOSED_MESSAGE)
  t.equal(closed?.connections, holders.length, `the old agent counted the connections it closed: ${JSON.stringify(closed)}`)
  t.equal(closed?.graceMs, GRACE_MS, 'after the lab\'s --drain-grace')

  for (const [i, l] of (await during).entries()) {
    t.equal(l.failures, 0, `load ${i}: ${l.requests} new connections during the restart, none failed (${JSON.stringify(l.errors)})`)
    t.ok(l.requests >= 20, `load ${i}: a real load`)
  }
  t.same(agentPids(pinRoot('node1')), [newPid], 'only the new agent runs')
})
