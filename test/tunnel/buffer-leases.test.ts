import t from 'tap'
import { connect as http2Connect, createServer as createH2Server } from 'node:http2'
import { createServer, connect } from 'node:net'
import { join } from 'node:path'
import { getDefaultHighWaterMark } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { bufferBudgetFor } from '../../src/agent/memory-limit'
import { NodeBufferBudget, type StallEntry } from '../../src/tunnel/buffer-budget'
import { NODE_HIGH_WATER_MARK, SOCKET_READ, TUNNEL_DEFAULTS } from '../../src/tunnel/defaults'
import { sleep } from './harness'

// The buffer budget's arithmetic and its stall leases, without a network (buffer-budget.ts):
// what 10,000 streams cost under the DaemonSet's limit, how a backed-up side leases its
// buffers, which stream is reset when there is no room, that the counters hold across
// threads, and the sizes of Node's own buffers the arithmetic is built on.

const KiB = 1024
const MiB = 1024 * KiB
const REPO = join(__dirname, '..', '..')

/** The budgets' clock in these tests: stall ages move only when a test moves it. */
let clock = 1_000_000
const now = (): number => clock
const GRACE = TUNNEL_DEFAULTS.stallGraceMs
const AFTER = TUNNEL_DEFAULTS.stallLeaseAfterMs

/** Time passes until what is backed up now is due a lease, and the budget leases. */
function leaseDue (budget: NodeBufferBudget): void {
  clock += AFTER
  budget.leaseBackedUp()
}

/** A stream as the budget's list sees it; `evicted` is set when the budget resets it. */
function entry (o: { moving?: boolean } = {}): StallEntry & { evicted: boolean } {
  const e = {
    backedUp: 0,
    receiveKiB: 0,
    sendKiB: 0,
    since: 0,
    // Moving: drained a moment ago; else long ago.
    drainedAt: o.moving === true ? clock : clock - 10 * GRACE,
    prev: null,
    next: null,
    evicted: false,
    evict: () => { e.evicted = true }
  }
  return e
}

t.test('10,000 streams at the DaemonSet\'s limit: 4 KiB windows, 20 KiB each, within the open share', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: bufferBudgetFor(512 * MiB) })
  const l = budget.limits
  t.equal(l.nodeBytes, 256 * MiB, 'half the 512 Mi limit')
  t.equal(l.openBytes, Math.floor(l.nodeBytes * TUNNEL_DEFAULTS.openBufferShare / KiB) * KiB, 'open streams may take 80 % of the budget')
  const { minWindowBytes: floor, maxWindowBytes: max } = l
  t.equal(budget.targetWindow(1, floor), floor, 'a stream without demand: the 4 KiB floor')
  t.equal(budget.targetWindow(1, max), TUNNEL_DEFAULTS.streamWindowBytes, 'one stream grown by its demand: the full 4 MiB')
  t.equal(budget.targetWindow(100, max), 256 * KiB, 'a hundred on one session: at most half the session budget between them')
  for (let i = 0; i < 10_000; i++) budget.streamOpened()
  t.equal(budget.targetWindow(100, floor), floor, 'at 10,000 idle streams: the floor, whatever the count')
  t.equal(budget.streams(), 10_000, 'the node counts its streams')
  const perStream = Math.ceil((l.minWindowBytes + l.streamOverheadBytes) / KiB) * KiB
  t.equal(perStream, 20 * KiB, 'a stream reserves 20 KiB at the floor (its window and its objects)')
  let opened = 0
  while (budget.reserveOpen(perStream / KiB)) opened++
  t.comment(`${opened} streams fit in the open share (${(l.openBytes / MiB).toFixed(1)} of ${(l.nodeBytes / MiB).toFixed(1)} MiB); then ${Math.floor((l.nodeBytes - l.openBytes) / l.receiveStallBytes)} receive sides or ${Math.floor((l.nodeBytes - l.openBytes) / l.sendStallBytes)} send sides backed up at once`)
  t.ok(opened >= 10_400, `${opened} ≥ 10,400 streams fit (10,000 with room to spare)`)
})

t.test('a stream that does not fit drops every grown window to the floor for a while, on the other threads too', async (t) => {
  const budget = NodeBufferBudget.create()
  // Another thread's view of the same budget, with one session.
  const other = NodeBufferBudget.attach(budget.buffer)
  let rebalanced = 0
  const session = { rebalance: () => { rebalanced++ }, held: () => 0 }
  other.addSession(session)
  t.teardown(() => { other.deleteSession(session) })
  const { minWindowBytes: floor, maxWindowBytes: max } = budget.limits
  t.equal(other.targetWindow(1, max), max, 'a grown window, before')
  budget.pressure()
  t.equal(budget.targetWindow(1, max), floor, 'on the thread that had no room: the floor at once')
  const started = Date.now()
  while (!other.underPressure() && Date.now() - started < 5000) await sleep(50)
  t.equal(other.targetWindow(1, max), floor, `on the other thread within ${Date.now() - started} ms: the floor`)
  t.ok(rebalanced >= 1, 'and its sessions re-check their windows')
  while (budget.underPressure() && Date.now() - started < 5000) await sleep(50)
  t.equal(budget.targetWindow(1, max), max, 'a second later, windows may grow again')
})

t.test('a side backed up for stallLeaseAfterMs leases its buffers, once, and returns them when it drains', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: MiB }, now)
  const { receiveStallBytes, sendStallBytes } = budget.limits
  const e = entry()
  budget.stall(e, 'receive')
  budget.stall(e, 'receive')
  t.equal(budget.stalledStreams(), 1, 'backed up')
  clock += AFTER - 1
  budget.leaseBackedUp()
  t.equal(budget.stalledBytes(), 0, 'nothing leased before stallLeaseAfterMs')
  leaseDue(budget)
  t.equal(budget.stalledBytes(), receiveStallBytes, 'then the receive side leases receiveStallBytes, once')
  budget.stall(e, 'send')
  leaseDue(budget)
  t.equal(budget.stalledBytes(), receiveStallBytes + sendStallBytes, 'and the send side its own')
  t.equal(budget.stalledStreams(), 1, 'one stream in the list')
  budget.unstall(e, 'receive')
  t.equal(budget.stalledBytes(), sendStallBytes)
  budget.unstall(e, 'send')
  t.equal(budget.stalledBytes(), 0, 'all returned')
  t.equal(budget.stalledStreams(), 0)
  t.equal(budget.reservedBytes(), 0)
})

t.test('a side that drains sooner leases nothing (a moving stream\'s chunk in transit), even with no room', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: 100 * KiB, openBytes: 20 * KiB }, now)
  const held = entry()
  budget.stall(held, 'receive')
  leaseDue(budget)
  const moving = entry({ moving: true })
  budget.stall(moving, 'send')
  clock += AFTER - 1
  budget.unstall(moving, 'send')
  leaseDue(budget)
  t.notOk(moving.evicted || held.evicted, 'nobody is reset')
  t.equal(budget.stalledBytes(), budget.limits.receiveStallBytes, 'only the lasting stall holds a lease')
  // And the budget leases by itself, on its timer.
  budget.stall(moving, 'receive')
  clock += AFTER
  await new Promise((resolve) => setTimeout(resolve, AFTER))
  t.ok(held.evicted, 'a side still backed up did lease, on the budget\'s own timer: the moving stream had the older stall reset for room')
  t.equal(moving.receiveKiB * KiB, budget.limits.receiveStallBytes)
})

t.test('no room: a still stream may reset only streams backed up for the grace, else it is reset itself', async (t) => {
  // Room for three receive leases (240 KiB) beside the open share.
  const budget = NodeBufferBudget.create({ nodeBytes: 260 * KiB, openBytes: 20 * KiB }, now)
  const held = [entry(), entry(), entry()]
  for (const e of held) budget.stall(e, 'receive')
  leaseDue(budget)
  t.equal(budget.stalledBytes(), 240 * KiB)
  clock += GRACE - 1 - 2 * AFTER
  const late = entry()
  budget.stall(late, 'receive')
  leaseDue(budget)
  t.ok(late.evicted, 'the stream that found no room is reset')
  t.equal(late.receiveKiB, 0, 'with no lease')
  t.notOk(held.some((e) => e.evicted), 'the others, backed up for less than the grace, are not')
  t.equal(budget.stalledBytes(), 240 * KiB, 'the budget is unchanged')
})

t.test('no room: a moving stream resets the stream backed up longest', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: 260 * KiB, openBytes: 20 * KiB }, now)
  const held = [entry(), entry(), entry()]
  for (const e of held) { budget.stall(e, 'receive'); leaseDue(budget) }
  const moving = entry({ moving: true })
  budget.stall(moving, 'receive')
  clock += AFTER
  budget.leaseBackedUp()
  t.notOk(moving.evicted, 'a stream that drained a moment ago gets its lease')
  t.same(held.map((e) => e.evicted), [true, false, false], 'the longest backed-up one was reset for it')
  t.equal(budget.stalledStreams(), 3)
  t.equal(budget.stalledBytes(), 240 * KiB)
})

t.test('no room: streams backed up for the grace are reset, longest first, for a still stream too', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: 260 * KiB, openBytes: 20 * KiB }, now)
  const held = [entry(), entry(), entry()]
  for (const e of held) { budget.stall(e, 'receive'); leaseDue(budget) }
  clock += GRACE
  const late = entry()
  budget.stall(late, 'send')
  leaseDue(budget)
  t.notOk(late.evicted, 'the new send side gets its lease (160 KiB)')
  t.same(held.map((e) => e.evicted), [true, true, false], 'two of the oldest were reset to make room for it')
})

t.test('open streams take at most the open share; stalls what is left, and an open resets stalls past the grace', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: 200 * KiB, openBytes: 128 * KiB }, now)
  t.ok(budget.reserveOpen(100), '100 KiB of open streams')
  t.notOk(budget.reserveOpen(40), 'not 140: over the open share')
  const stalled = entry()
  budget.stall(stalled, 'receive')
  leaseDue(budget)
  t.equal(budget.reservedBytes(), 180 * KiB, 'a receive side leases 80 KiB of what is left')
  t.notOk(budget.reserveOpen(28), 'an open within the open share but over the node: refused while the stall is young')
  t.equal(budget.openBytes(), 100 * KiB, 'and nothing kept')
  clock += GRACE
  t.ok(budget.reserveOpen(28), 'once the stall is past the grace, the open resets it and fits')
  t.ok(stalled.evicted, 'the stall was reset')
  t.equal(budget.reservedBytes(), 128 * KiB)
})

t.test('the counters are shared across threads: a worker and the main thread reserving at once reserve exactly the open share', async (t) => {
  const budget = NodeBufferBudget.create({ nodeBytes: 64 * MiB })
  const go = new Int32Array(new SharedArrayBuffer(4))
  const src = `
    const { workerData, parentPort } = require('node:worker_threads')
    const { NodeBufferBudget } = require(workerData.module)
    const b = NodeBufferBudget.attach(workerData.buffer)
    parentPort.postMessage('ready')
    Atomics.wait(workerData.go, 0, 0)
    let ok = 0
    while (b.reserveOpen(1)) ok++
    parentPort.postMessage(ok)`
  const worker = new Worker(src, { eval: true, workerData: { buffer: budget.buffer, go, module: join(REPO, 'dist/src/tunnel/buffer-budget.js') } })
  const messages: Array<string | number> = []
  worker.on('message', (m: string | number) => { messages.push(m) })
  const next = async (): Promise<string | number> => {
    while (messages.length === 0) await sleep(5)
    return messages.shift() as string | number
  }
  t.equal(await next(), 'ready')
  Atomics.store(go, 0, 1)
  Atomics.notify(go, 0)
  let ok = 0
  while (budget.reserveOpen(1)) ok++
  const fromWorker = await next() as number
  await worker.terminate()
  t.comment(`main thread ${ok} KiB, worker ${fromWorker} KiB`)
  t.equal((ok + fromWorker) * KiB, budget.limits.openBytes, 'exactly the open share reserved between the two threads')
  t.equal(budget.openBytes(), budget.limits.openBytes)
})

t.test('Node buffers by the sizes the arithmetic assumes (defaults.ts)', async (t) => {
  t.equal(getDefaultHighWaterMark(false), NODE_HIGH_WATER_MARK, 'the default high-water mark of streams')
  // A socket: its high-water marks, and its largest read.
  let biggest = 0
  const server = createServer((s) => { s.on('data', (c: Buffer) => { biggest = Math.max(biggest, c.length) }); s.on('end', () => { s.end() }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const c = connect((server.address() as { port: number }).port, '127.0.0.1')
  await new Promise((resolve) => c.once('connect', resolve))
  t.equal(c.readableHighWaterMark, NODE_HIGH_WATER_MARK, 'socket, readable')
  t.equal(c.writableHighWaterMark, NODE_HIGH_WATER_MARK, 'socket, writable')
  c.end(Buffer.alloc(8 * MiB))
  await new Promise((resolve) => c.once('close', resolve))
  t.ok(biggest > 0 && biggest <= SOCKET_READ, `the largest read from a socket was ${biggest} bytes, at most ${SOCKET_READ}`)
  // An HTTP/2 stream: its high-water marks.
  const h2 = createH2Server()
  h2.on('stream', (s) => { s.respond(); s.end() })
  await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { h2.close() })
  const session = http2Connect(`http://127.0.0.1:${(h2.address() as { port: number }).port}`)
  t.teardown(() => { session.destroy() })
  const req = session.request({ ':path': '/' })
  t.equal(req.readableHighWaterMark, NODE_HIGH_WATER_MARK, 'HTTP/2 stream, readable')
  t.equal(req.writableHighWaterMark, NODE_HIGH_WATER_MARK, 'HTTP/2 stream, writable')
  req.resume()
  await new Promise((resolve) => req.once('close', resolve))
})
