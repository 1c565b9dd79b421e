import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ferry, ferryOk, REPO } from '../helpers/cli'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'
import { agentGet } from '../helpers/agent-admin'
import { BpfMap } from '../../src/native'
import { MAX_WORKERS, u32Codec, u64Codec, uidKeyCodec } from '../../src/capture/map-layout'
import { counter, labDir, metrics, nodeLog, pod } from '../helpers/lab'

// The data path on four workers, for real: a two-node lab (test/fixtures/workers-lab.yaml)
// whose agents run `--workers 4`, pods running test/fixtures/echo-client.js against TCP
// echo servers. Each case fails on a single-loop data path or on a worker choice that
// leaves a worker out: connections must reach every worker on each path (outbound,
// plaintext inbound, tunnel), every byte must come back in order, a policy must close
// exactly the denied connections wherever they live, a failing worker must cost only its
// own connections, and /metrics must add up to the access log.

const lab = uniqueLabName('e2ewrk')
const fixture = join(REPO, 'test/fixtures/workers-lab.yaml')
const CLIENT = join(REPO, 'test/fixtures/echo-client.js')
const WORKERS = 4

t.setTimeout(480_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, '--workers', String(WORKERS), fixture], { timeoutMs: 150_000 })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

async function run (ns: string, name: string, args: Array<string | number>, timeoutMs = 60_000): Promise<any> {
  const r = await ferry(['lab', 'exec', '--lab', lab, '-n', ns, name, '--', 'timeout', String(Math.ceil(timeoutMs / 1000)), process.execPath, CLIENT, ...args.map(String)], { timeoutMs: timeoutMs + 10_000 })
  if (r.code !== 0) throw new Error(`echo-client in ${ns}/${name} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

const accessSince = (node: string, mark: number): any[] => nodeLog(lab, node).slice(mark).filter((l) => l.msg === 'access')
const workersOf = (lines: readonly any[]): number[] => [...new Set(lines.map((l) => l.worker as number))].sort()
const everyWorker = Array.from({ length: WORKERS }, (_, i) => i)

t.test('the agents run four workers', async (t) => {
  for (const node of ['node1', 'node2']) {
    const r = await agentGet(lab, node, '/debug/workers')
    t.equal(r.status, 200)
    t.same(r.body.workers.map((w: any) => w.worker).sort(), everyWorker, `${node}: workers 0-3 answer`)
  }
})

t.test('400 connections on three paths reach every worker, whole and in order, each logged once', async (t) => {
  const marks = { node1: nodeLog(lab, 'node1').length, node2: nodeLog(lab, 'node2').length }
  const open = pod(lab, 'app', 'echo-open').ips[0]
  const [tunnel, tunnelB, local, plaintext] = await Promise.all([
    run('app', 'client-a', ['burst', 'echo-remote.app.svc.cluster.local', 7000, 100, 8, 32 * 1024]),
    run('app', 'client-b', ['burst', 'echo-remote.app.svc.cluster.local', 7000, 100, 8, 32 * 1024]),
    run('app', 'client-a', ['burst', pod(lab, 'app', 'echo-local').ips[0], 7000, 100, 8, 32 * 1024]),
    run('plain', 'outsider', ['burst', open, 7000, 100, 8, 32 * 1024])
  ])
  t.same([tunnel.failed, tunnelB.failed, local.failed, plaintext.failed], [0, 0, 0, 0], `no failure (${JSON.stringify([tunnel.errors, tunnelB.errors, local.errors, plaintext.errors])})`)
  t.same([tunnel.ok, tunnelB.ok, local.ok, plaintext.ok], [100, 100, 100, 100])
  await waitFor(() => accessSince('node2', marks.node2).filter((l) => l.destination?.pod === 'echo-open').length >= 100 &&
    accessSince('node2', marks.node2).filter((l) => l.destination?.pod === 'echo-remote').length >= 200 &&
    accessSince('node1', marks.node1).filter((l) => l.direction === 'outbound').length >= 300, { timeoutMs: 15_000, what: 'the access lines' })
  const n1 = accessSince('node1', marks.node1)
  const n2 = accessSince('node2', marks.node2)
  const outbound = n1.filter((l) => l.direction === 'outbound' && l.source?.pod?.startsWith('client-') === true)
  const tunnelIn = n2.filter((l) => l.direction === 'inbound' && l.mtls === true && l.destination?.pod === 'echo-remote')
  const plainIn = n2.filter((l) => l.direction === 'inbound' && l.mtls === false && l.destination?.pod === 'echo-open')
  t.equal(outbound.length, 300, 'one outbound line per connection of the clients')
  t.equal(tunnelIn.length, 200, 'one tunnel inbound line per cross-node connection')
  t.equal(plainIn.length, 100, 'one plaintext inbound line per connection of the outsider')
  t.same(workersOf(outbound), everyWorker, 'outbound: every worker of node1 accepted some')
  // The tunnel carries connections as streams of pooled sessions — one per source
  // identity per worker of node1, eight here — so node2's workers share sessions, not
  // connections (test/tunnel-syn/workers.test.ts shows every worker's listener taking
  // its share of many connections).
  const sessionsAt = (await agentGet(lab, 'node2', '/debug/tunnel')).body.workers.filter((w: any) => w.server.sessionsAccepted > 0).map((w: any) => w.worker)
  t.ok(workersOf(tunnelIn).length > 1 && sessionsAt.length > 1, `tunnel: sessions on several workers of node2 (streams on ${workersOf(tunnelIn).join(',')}; sessions on ${sessionsAt.join(',')})`)
  t.same(workersOf(plainIn), everyWorker, 'plaintext inbound: every worker of node2 accepted some')
  t.ok([...outbound, ...tunnelIn, ...plainIn].every((l) => l.result === 'ok' && l.bytes_received === 32 * 1024 && l.bytes_sent === 32 * 1024), 'every line: ok, 32 KiB each way')
})

t.test('/metrics adds up to the access log over every worker', async (t) => {
  // Nothing else runs now: the totals settle once the last lines are written.
  for (const node of ['node1', 'node2']) {
    await waitFor(async () => {
      const text = await metrics(lab, node)
      const lines = nodeLog(lab, node).filter((l) => l.msg === 'access')
      return counter(text, 'istio_tcp_connections_closed_total') === lines.length
    }, { timeoutMs: 10_000, what: `${node}: closed connections = access lines` })
    const text = await metrics(lab, node)
    const lines = nodeLog(lab, node).filter((l) => l.msg === 'access')
    const sum = (f: string): number => lines.reduce((n, l) => n + Number(l[f] ?? 0), 0)
    t.equal(counter(text, 'istio_tcp_connections_closed_total'), lines.length, `${node}: connections`)
    t.equal(counter(text, 'istio_tcp_sent_bytes_total'), sum('bytes_sent'), `${node}: bytes sent`)
    t.equal(counter(text, 'istio_tcp_received_bytes_total'), sum('bytes_received'), `${node}: bytes received`)
    t.equal(counter(text, 'ferry_tcp_connections_active'), 0, `${node}: nothing open`)
  }
})

// Guards the held-bytes figures with workers: only the thread that owns a stream can read
// its buffers, so the main thread alone reported 0 however much the workers' streams held.
t.test('bytes held by tunnel streams are reported from the workers that hold them: /debug/tunnel and /metrics', async (t) => {
  const stuffing = run('app', 'client-a', ['stuff', 'echo-remote.app.svc.cluster.local', 7000, 32 * 1024 * 1024, 20_000], 40_000)
  for (const node of ['node1', 'node2']) {
    const held = await waitFor(async () => {
      const debug = (await agentGet(lab, node, '/debug/tunnel')).body.buffers.heldBytes as number
      const metric = counter(await metrics(lab, node), 'ferry_tunnel_buffer_held_bytes')
      return debug > 0 && metric > 0 ? { debug, metric } : null
    }, { timeoutMs: 18_000, intervalMs: 200, what: `${node}: bytes held by its tunnel streams` })
    t.pass(`${node}: ${held.debug} bytes held (/debug/tunnel), ${held.metric} (/metrics)`)
  }
  t.match(await stuffing, { connected: true }, 'the stuffing connection was made')
})

t.test('a policy applied while four workers hold connections closes exactly the denied ones', async (t) => {
  // Plaintext from outside the mesh to a PERMISSIVE pod is spread connection by
  // connection over node2's workers; the tunnel's streams from client-a are not denied.
  const outsider = pod(lab, 'plain', 'outsider').ips[0]
  const open = pod(lab, 'app', 'echo-open').ips[0]
  const dir = mkdtempSync(join(tmpdir(), 'ferry-workers-'))
  const file = join(dir, 'deny-outsider.yaml')
  writeFileSync(file, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-outsider, namespace: app }
spec:
  selector: { matchLabels: { app: echo-open } }
  action: DENY
  rules: [{ from: [{ source: { ipBlocks: ["${outsider}/32"] } }] }]
`)
  const mark = nodeLog(lab, 'node2').length
  const holding = Promise.all([
    run('app', 'client-a', ['hold', open, 7000, 24, 12_000]),
    run('plain', 'outsider', ['hold', open, 7000, 40, 12_000])
  ])
  // Every connection is up and echoing before the policy arrives.
  await waitFor(async () => (await agentGet(lab, 'node2', '/debug/workers')).body.workers.reduce((n: number, w: any) => n + w.connections, 0) >= 64, { timeoutMs: 10_000, what: '64 held connections at node2' })
  await ferryOk(['lab', 'apply', '--lab', lab, file])
  const [a, outside] = await holding
  t.same(a, { alive: 24, died: 0, errors: [] }, 'client-a (mesh): every connection lived on')
  t.equal(outside.died, 40, `the outsider: every connection was closed (${JSON.stringify(outside.errors)})`)
  const closed = accessSince('node2', mark).filter((l) => l.source?.ip === outsider && l.result === 'denied')
  t.equal(closed.length, 40, 'node2 logged each closed connection as denied')
  t.same(workersOf(closed), everyWorker, 'closed on every worker that held some')
  await ferryOk(['lab', 'delete', '--lab', lab, file])
})

t.test('a worker that fails costs only its own connections, and no new connection fails', async (t) => {
  const before = await metrics(lab, 'node1')
  const loop = run('app', 'client-a', ['loop', 'echo-remote.app.svc.cluster.local', 7000, 8000, 4000])
  const hold = run('app', 'client-a', ['hold', pod(lab, 'app', 'echo-local').ips[0], 7000, 32, 8000])
  await waitFor(async () => (await agentGet(lab, 'node1', '/debug/workers')).body.workers.reduce((n: number, w: any) => n + w.connections, 0) >= 32, { timeoutMs: 10_000, what: 'held connections at node1' })
  const crash = await agentGet(lab, 'node1', '/debug/workers/crash?worker=1', undefined, 'POST')
  t.equal(crash.status, 202, JSON.stringify(crash.body))
  const [l, h] = await Promise.all([loop, hold])
  // The loop is sequential: its connection open on the failing worker is reset. On a loaded
  // machine a second reset has been seen once in several full-suite runs (cause not yet
  // known); what this guards is that no connection is refused or times out while the
  // worker is replaced, and that resets stay a handful, not the worker's share of the loop.
  t.ok(l.failed <= 2 && l.errors.every((e: string) => e === 'ECONNRESET'), `${l.connections as number} new connections during the failure: no refusal, no timeout (${JSON.stringify(l.errors)})`)
  t.ok(l.connections > 20, 'a real loop')
  t.ok(h.died > 0 && h.died < 32, `only the failed worker's held connections died (${h.died as number} of 32)`)
  const after = await metrics(lab, 'node1')
  t.equal(counter(after, 'ferry_worker_restarts_total', { worker: '1' }) - counter(before, 'ferry_worker_restarts_total', { worker: '1' }), 1, 'one restart, counted')
  t.ok(counter(after, 'ferry_worker_connections_lost_total', { worker: '1' }) >= h.died, 'its connections counted as lost')
  const workers = (await agentGet(lab, 'node1', '/debug/workers')).body.workers
  t.same(workers.map((w: any) => w.worker).sort(), everyWorker, 'the worker is back')
  t.ok(readFileSync(join(labDir(lab), 'logs', 'node-node1.log'), 'utf8').includes('worker started again'))
})

t.test('after 20 worker restarts the agent is back at its baseline: fds, selection-map entries, memory', async (t) => {
  const state = JSON.parse(readFileSync(join(labDir(lab), 'state.json'), 'utf8'))
  const pinRoot: string = state.plan.nodes.find((n: any) => n.name === 'node1').pinRoot
  const pid: number = state.pids['node/node1']
  const fds = (): number => readdirSync(`/proc/${pid}/fd`).length
  const rssMiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024
  // Entries of the pinned SOCKMAP of inbound listeners, at the node's pods' slots: one per pod, worker and family.
  const inboundEntries = (): number => {
    const slots = BpfMap.openPinned(join(pinRoot, 'ferry_slots'), uidKeyCodec, u32Codec)
    const inbound = BpfMap.openPinned(join(pinRoot, 'ferry_inbound'), u32Codec, u64Codec)
    try {
      let n = 0
      for (const uid of slots.keys()) {
        const slot = slots.get(uid) as number
        for (let i = slot * MAX_WORKERS * 2; i < (slot + 1) * MAX_WORKERS * 2; i++) if (inbound.get(i) !== null) n++
      }
      return n
    } finally {
      slots.close()
      inbound.close()
    }
  }
  const allBack = async (): Promise<void> => {
    await waitFor(async () => (await agentGet(lab, 'node1', '/debug/workers')).body.workers?.length === WORKERS, { timeoutMs: 15_000, what: 'every worker serving' })
  }
  const crashAll = async (times: number): Promise<void> => {
    const restartsBefore = counter(await metrics(lab, 'node1'), 'ferry_worker_restarts_total')
    for (let i = 0; i < times; i++) {
      const r = await agentGet(lab, 'node1', `/debug/workers/crash?worker=${i % WORKERS}`, undefined, 'POST')
      if (r.status !== 202) throw new Error(`crash ${i + 1}: ${r.status} ${JSON.stringify(r.body)}`)
      await waitFor(async () => counter(await metrics(lab, 'node1'), 'ferry_worker_restarts_total') >= restartsBefore + i + 1, { timeoutMs: 15_000, what: `restart ${i + 1} counted` })
      await allBack()
    }
  }
  await allBack()
  // One restart of each worker first: the allocator's arenas and the main thread's
  // caches reach their steady size; a leak grows with every restart after that.
  await crashAll(WORKERS)
  const before = { fds: fds(), entries: inboundEntries(), rss: rssMiB() }
  await crashAll(20)
  // The restarted workers' heaps are gone; give the allocator a moment to hand pages back.
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const after = { fds: fds(), entries: inboundEntries(), rss: rssMiB() }
  t.comment(`node1's agent before: ${JSON.stringify(before)}, after 20 restarts: ${JSON.stringify(after)}`)
  // At most the baseline: a restarted worker starts with no connection and an empty pool, so
  // the sockets of the pooled tunnel sessions it held before may be gone; a leak would add.
  t.ok(after.fds <= before.fds, `open fds back at the baseline (${after.fds}, was ${before.fds})`)
  t.equal(after.entries, before.entries, 'inbound selection-map entries back at the baseline')
  t.ok(after.rss < before.rss + 24, `RSS back near the baseline (${after.rss.toFixed(1)} MiB, was ${before.rss.toFixed(1)} MiB)`)
  // And the node still carries connections on every worker.
  const r = await run('app', 'client-a', ['burst', pod(lab, 'app', 'echo-local').ips[0], 7000, 64, 8, 1024])
  t.equal(r.failed, 0)
})
