import t from 'tap'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { NodeLimits, type NodeLimitsMemory } from '../../src/limits/node-limits'
import { REPO } from '../helpers/cli'

// One node, one set of limits: REAL worker threads (as the agent's data-path workers),
// each attached to the memory this thread allocated, hammer the same keys at once. A
// per-worker copy of any limit would let WORKERS times as much through; these tests
// fail then. The workers run the compiled module (dist/, `npx tsc -p tsconfig.json`).

t.setTimeout(60_000)

const WORKERS = 4
const MODULE = join(REPO, 'dist/src/limits/node-limits.js')
const SIZES = { backends: 256, endpoints: 4096, pods: 256 }

// Every worker waits on `go` so that they start together, runs `job`, and posts its result.
const PRELUDE = `
const { workerData, parentPort } = require('node:worker_threads')
const { NodeLimits } = require(workerData.module)
const limits = new NodeLimits(workerData.memory)
const go = new Int32Array(workerData.go)
Atomics.add(go, 1, 1)
Atomics.wait(go, 0, 0);
`

async function run<R> (memory: NodeLimitsMemory, job: string, extra: Record<string, unknown> = {}): Promise<R[]> {
  const go = new SharedArrayBuffer(8)
  const flags = new Int32Array(go)
  const workers = Array.from({ length: WORKERS }, (_, id) => new Worker(`${PRELUDE}\n;(async () => {\n${job}\n})().then((r) => parentPort.postMessage(r), (e) => { throw e })`, {
    eval: true,
    workerData: { module: MODULE, memory, go, id, ...extra }
  }))
  try {
    const results = workers.map(async (w) => await new Promise<R>((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
      w.once('exit', (code) => { reject(new Error(`worker exited ${code}`)) })
    }))
    while (Atomics.load(flags, 1) < WORKERS) await new Promise((resolve) => setTimeout(resolve, 5))
    Atomics.store(flags, 0, 1)
    Atomics.notify(flags, 0)
    return await Promise.all(results)
  } finally {
    await Promise.all(workers.map(async (w) => await w.terminate()))
  }
}

t.test('every worker lands on the same slot for a key', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const slots = await run<number[]>(memory, `
    const { SharedTable } = require(workerData.module.replace('node-limits', 'shared-table'))
    const table = new SharedTable(workerData.memory.buffer, 0, { slots: 1024, payloadWords: 2 })
    const keys = Array.from({ length: 600 }, (_, i) => 'key-' + i)
    // Each worker in its own order, so that claims race.
    const order = keys.map((k, i) => [k, (i * 7919 + workerData.id * 104729) % 600]).sort((a, b) => a[1] - b[1]).map((p) => p[0])
    const found = {}
    for (const k of order) found[k] = table.find(k, Date.now())
    return keys.map((k) => found[k])
  `)
  for (let w = 1; w < WORKERS; w++) t.same(slots[w], slots[0], `worker ${w} agrees with worker 0`)
  t.equal(new Set(slots[0]).size, 600, 'one slot per key')
  t.notOk(slots[0].includes(-1))
})

t.test('pool max 10: never more than 10 requests in flight across all workers', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const observed = new SharedArrayBuffer(8)
  const results = await run<{ admitted: number, refused: number }>(memory, `
    const seen = new Int32Array(workerData.observed)
    const gate = limits.poolFor('ns/svc:80', { maxConnections: null, maxPendingRequests: null, maxRequests: 10, maxRequestsPerConnection: null, connectTimeoutMs: null, idleTimeoutMs: null })
    let admitted = 0
    let refused = 0
    const one = async () => {
      const release = gate.request()
      if (release === null) { refused++; return }
      admitted++
      const now = Atomics.add(seen, 0, 1) + 1
      for (let peak = Atomics.load(seen, 1); now > peak; peak = Atomics.load(seen, 1)) if (Atomics.compareExchange(seen, 1, peak, now) === peak) break
      await new Promise((r) => setImmediate(r))
      Atomics.sub(seen, 0, 1)
      release()
    }
    for (let round = 0; round < 300; round++) await Promise.all(Array.from({ length: 8 }, one))
    return { admitted, refused }
  `, { observed })
  const seen = new Int32Array(observed)
  const admitted = results.reduce((n, r) => n + r.admitted, 0)
  const refused = results.reduce((n, r) => n + r.refused, 0)
  t.ok(Atomics.load(seen, 1) <= 10, `peak in flight ${Atomics.load(seen, 1)} ≤ 10`)
  t.equal(Atomics.load(seen, 1), 10, 'the workers did contend up to the limit')
  t.ok(refused > 0, `overflow refused (${refused} of ${admitted + refused})`)
  t.same(new NodeLimits(memory).poolFor('ns/svc:80', { maxConnections: null, maxPendingRequests: null, maxRequests: 10, maxRequestsPerConnection: null, connectTimeoutMs: null, idleTimeoutMs: null }).counts(), { requests: 0, connections: 0 }, 'every count back to 0')
})

t.test('retry budget: one budget for the node — the floor and 20 % of every worker\'s requests, in total', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const results = await run<number>(memory, `
    const budget = limits.budgetFor('ns/svc:80')
    for (let i = 0; i < 1000; i++) budget.deposit()
    const done = new Int32Array(workerData.barrier)
    Atomics.add(done, 0, 1)
    while (Atomics.load(done, 0) < 4) Atomics.wait(done, 0, Atomics.load(done, 0), 10)
    // Every worker's requests are in: retries race for the node's budget (a refusal can be
    // a race's, transient: stop after many in a row).
    let retries = 0
    for (let misses = 0; misses < 100;) {
      if (budget.withdraw() !== null) { retries++; misses = 0 } else misses++
    }
    return retries
  `, { barrier: new SharedArrayBuffer(4) })
  const total = results.reduce((a, b) => a + b, 0)
  // 4 × 1000 requests: the floor's turn due now, the next one booked, and 799 (under 20 %)
  // — not 4 × (2 + 199).
  t.equal(total, 801, `retries over all workers: ${results.join(' + ')}`)
})

t.test('rate limit: one bucket per pod, shared by every worker', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const results = await run<number>(memory, `
    const bucket = limits.rateLimitFor('pod-uid-7', { requests: 1, perSeconds: 3600, burst: 50 }, 'RateLimit ns/api')
    let allowed = 0
    for (let i = 0; i < 500; i++) if (bucket.take(Date.now()).allowed) allowed++
    return allowed
  `)
  t.equal(results.reduce((a, b) => a + b, 0), 50, `allowed over all workers: ${results.join(' + ')}`)
})

t.test('outliers: consecutive errors reported by different workers add up; ejections and max ejection percent are the node\'s', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const barrier = new SharedArrayBuffer(4)
  const policy = { consecutive5xxErrors: 8, consecutiveGatewayErrors: null, consecutiveLocalOriginFailures: null, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50, minHealthPercent: 0 }
  await run<boolean>(memory, `
    const o = limits.outliersFor('ns/svc:80', workerData.policy, () => 4)
    // Two errors each for endpoint a: 8 over the node.
    o.report('a', '5xx', Date.now())
    o.report('a', '5xx', Date.now())
    const done = new Int32Array(workerData.barrier)
    Atomics.add(done, 0, 1)
    while (Atomics.load(done, 0) < 4) Atomics.wait(done, 0, Atomics.load(done, 0), 10)
    // Then every other endpoint fails a lot: only one more of the 4 may be ejected (50 %).
    for (const id of ['b', 'c', 'd']) for (let i = 0; i < 20; i++) o.report(id, '5xx', Date.now())
    return o.ejected('a', Date.now())
  `, { policy, barrier })
  const o = new NodeLimits(memory).outliersFor('ns/svc:80', policy, () => 4)
  t.ok(o.ejected('a', Date.now()), '8 errors over 4 workers ejected endpoint a')
  t.equal(o.active(Date.now()), 2, 'max ejection percent held across workers: 2 of 4')
  t.equal(['b', 'c', 'd'].filter((id) => o.ejected(id, Date.now())).length, 1)
})

t.test('a worker thread that dies holding pool counts: the main thread forgets them, the others\' stay', async (t) => {
  const memory = NodeLimits.allocate(SIZES)
  const pool = { maxConnections: null, maxPendingRequests: null, maxRequests: 100, maxRequestsPerConnection: null, connectTimeoutMs: null, idleTimeoutMs: null }
  const src = `
    const { workerData, parentPort } = require('node:worker_threads')
    const { NodeLimits } = require(workerData.module)
    const gate = new NodeLimits(workerData.memory, Date.now, workerData.id).poolFor('ns/svc:80', workerData.pool)
    for (let i = 0; i < 5; i++) gate.acquireRequest()
    parentPort.postMessage('held')
    setInterval(() => {}, 1000)
  `
  const workers = [1, 2].map((id) => new Worker(src, { eval: true, workerData: { module: MODULE, memory, id, pool } }))
  t.teardown(async () => { await Promise.all(workers.map(async (w) => await w.terminate())) })
  await Promise.all(workers.map(async (w) => await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })))
  const main = new NodeLimits(memory)
  t.equal(main.poolFor('ns/svc:80', pool).counts().requests, 10, 'both workers\' requests counted')
  await workers[0].terminate()
  main.forgetWorker(1)
  t.equal(main.poolFor('ns/svc:80', pool).counts().requests, 5, 'the dead worker\'s 5 forgotten; the live one\'s 5 stay')
})
