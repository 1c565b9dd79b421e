import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { agentGet } from '../helpers/agent-admin'
import { counter, execInPod, metrics, nodeLog } from '../helpers/lab'
import { jsonFrom } from '../helpers/l7-lab'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'

// Retries with the node-wide budget, outlier detection, P2C over peak-EWMA, a local rate
// limit and connection-pool limits on the lab (test/fixtures/apps/traffic-lab.yaml), the
// default number of workers. The servers (test/fixtures/apps/http-behave-server.js) count
// what they received (/stats, read inside the pod), so the extra load retries cause, and
// the most requests a limit let through at once, are measured where they land.

const lab = uniqueLabName('e2etrs')
const FIXTURE = join(REPO, 'test/fixtures/apps/traffic-lab.yaml')
const ROUTES = join(REPO, 'test/fixtures/traffic')
const LOAD = join(REPO, 'test/fixtures/apps/http-load.js')
const svc = (name: string, path = '/'): string => `http://${name}.traffic.svc.cluster.local${path}`

t.setTimeout(600_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, FIXTURE], { timeoutMs: 180_000 })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 90_000 }) })

async function apply (file: string): Promise<void> {
  await ferryOk(['lab', 'apply', '--lab', lab, join(ROUTES, file)])
}

async function load (url: string, args: string[], timeoutMs = 200_000): Promise<any> {
  return await jsonFrom(lab, 'traffic', 'client', ['node', LOAD, '--url', url, ...args], timeoutMs)
}

async function stats (pod: string): Promise<{ requests: number, failed: number, canceled: number, peak: number }> {
  const r = await execInPod(lab, 'traffic', pod, ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:8080/stats'])
  return JSON.parse(r.stdout)
}

/** Waits until node `node`'s agent has `objects` ("Kind ns/name") in force on every worker (its /debug/config follows the last worker). */
async function inForce (node: string, objects: readonly string[]): Promise<void> {
  await waitFor(async () => {
    const listed: Array<{ object: string, state: string }> = (await agentGet(lab, node, '/debug/config')).body.objects ?? []
    return objects.every((o) => listed.some((l) => l.object === o && l.state === 'accepted'))
  }, { timeoutMs: 30_000, intervalMs: 200, what: `${objects.join(', ')} in force on ${node}` })
}

/** The request lines node `node`'s agent wrote after line `mark` of its log. */
const requestLines = (node: string, mark: number): any[] => nodeLog(lab, node).slice(mark).filter((l) => l.msg === 'request')

t.test('retries: a backend failing 30 % with 503 at 20 requests/s: ≥ 99.5 % success over 2,000 requests, extra load within the budget', async (t) => {
  await apply('retries.yaml')
  await waitFor(async () => {
    const r = await load(svc('flaky'), ['--requests', '40', '--rate', '40'])
    return (r.statuses['503'] ?? 0) <= 1
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'retries in force' })
  const before = await stats('flaky')
  const r = await load(svc('flaky'), ['--requests', '2000', '--rate', '20', '--concurrency', '8'])
  const after = await stats('flaky')
  const ok = r.statuses['200'] ?? 0
  t.ok(ok / 2000 >= 0.995, `${ok} of 2000 succeeded (${(100 * ok / 2000).toFixed(2)} %)`)
  const upstream = after.requests - before.requests
  const seconds = r.elapsedMs / 1000
  t.comment(`${upstream} upstream requests for 2000 (${(upstream / 2000).toFixed(2)} per request) in ${seconds.toFixed(0)} s`)
  // The budget: retries ≤ 20 % of requests + 10/s.
  t.ok(upstream - 2000 <= 0.2 * 2000 + 10 * seconds, 'retries within 20 % + 10/s')
})

t.test('retries against a backend failing 100 %: upstream requests ≤ 1.2 × client requests + 10/s', async (t) => {
  // Service flaky-all: the same pod as flaky's, a budget of its own (flaky's requests of
  // the previous test have earned retries in flaky's), so this run's retries are its own
  // 20 % plus the floor's 10/s.
  const before = await stats('flaky')
  const r = await load(svc('flaky-all', '/?fail=100'), ['--requests', '600', '--rate', '30', '--concurrency', '16'])
  const after = await stats('flaky')
  const upstream = after.requests - before.requests
  const seconds = r.elapsedMs / 1000
  t.comment(`${upstream} upstream requests for 600 in ${seconds.toFixed(1)} s`)
  t.equal(r.statuses['200'] ?? 0, 0, 'nothing succeeds')
  t.ok(upstream <= 1.2 * 600 + 10 * seconds, `${upstream} ≤ 1.2 × 600 + 10/s × ${seconds.toFixed(1)} s`)
})

t.test('outlier detection: the endpoint that always answers 500 is ejected; ≥ 99 % success over the next 1,000; back after it heals', async (t) => {
  await apply('outliers.yaml')
  // Until ejected, a third of the requests meet trio-c.
  await waitFor(async () => {
    const r = await load(svc('trio'), ['--requests', '60', '--rate', '100'])
    return (r.statuses['500'] ?? 0) === 0 && Object.keys(r.servers).length === 2
  }, { timeoutMs: 60_000, intervalMs: 200, what: 'trio-c ejected' })
  const r = await load(svc('trio'), ['--requests', '1000', '--rate', '100', '--concurrency', '8'])
  const ok = r.statuses['200'] ?? 0
  t.ok(ok / 1000 >= 0.99, `${ok} of 1000 succeeded`)
  await execInPod(lab, 'traffic', 'trio-c', ['curl', '-sS', '-X', 'POST', '--max-time', '5', 'http://127.0.0.1:8080/heal'])
  await waitFor(async () => {
    const h = await load(svc('trio'), ['--requests', '60', '--rate', '100'])
    return (h.servers['trio-c'] ?? 0) > 0 && (h.statuses['500'] ?? 0) === 0
  }, { timeoutMs: 90_000, intervalMs: 1000, what: 'trio-c back after it healed (its ejection time over)' })
  t.pass('trio-c serves again')
})

t.test('P2C over peak-EWMA: the endpoint 50 ms slower than the other two receives < 10 % of requests after warm-up', async (t) => {
  await apply('lag.yaml')
  await waitFor(async () => {
    const r = await load(svc('lag'), ['--requests', '100', '--rate', '100', '--concurrency', '8'])
    return (r.servers['lag-c'] ?? 0) < 30
  }, { timeoutMs: 60_000, intervalMs: 500, what: 'the route in force and warmed up' })
  const r = await load(svc('lag'), ['--requests', '1000', '--rate', '100', '--concurrency', '8'])
  const slow = r.servers['lag-c'] ?? 0
  t.comment(`servers ${JSON.stringify(r.servers)}`)
  t.ok(slow / 1000 < 0.1, `lag-c took ${(100 * slow / 1000).toFixed(1)} %`)
  t.equal(r.statuses['200'], 1000)
})

// The client and Service limited's pod share node1: the client's 40 connections spread
// over node1's workers, and each takes its token on the same-node path. (Across nodes the
// tunnel carries one session per source worker, which may all land on one worker of the
// destination node: that would not tell a node's bucket from a worker's.)
t.test('local rate limit: a burst of 40 from 40 connections over both workers gets the bucket\'s 10, the rest 429 RL with x-ratelimit-* headers, counted', async (t) => {
  await apply('rate-limit.yaml')
  await inForce('node1', ['RateLimit traffic/limited'])
  const mark = nodeLog(lab, 'node1').length
  const limited = { reporter: 'destination', destination_workload: 'limited', response_code: '429', response_flags: 'RL' }
  const countedBefore = counter(await metrics(lab, 'node1'), 'istio_requests_total', limited)
  const r = await load(svc('limited'), ['--requests', '40', '--rate', '1000', '--concurrency', '40'], 60_000)
  t.comment(`statuses ${JSON.stringify(r.statuses)}, errors ${r.errors as number}`)
  t.equal(r.statuses['200'], 10, 'the bucket\'s 10 allowed, once for the node (per worker it would be up to 20)')
  t.equal(r.statuses['429'], 30, 'the other 30 refused')
  // One more, alone, to read what a refusal says.
  const one = await execInPod(lab, 'traffic', 'client', ['curl', '-sS', '--max-time', '5', '-D', '-', '-o', '/dev/null', svc('limited')])
  const headers = Object.fromEntries(one.stdout.split('\r\n').slice(1).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  t.match(one.stdout, /^HTTP\/1\.1 429 /, '429')
  t.comment(`429 headers: x-ratelimit-limit ${headers['x-ratelimit-limit']}, -remaining ${headers['x-ratelimit-remaining']}, -reset ${headers['x-ratelimit-reset']}`)
  t.equal(headers['x-ratelimit-limit'], '10', 'x-ratelimit-limit: the bucket')
  t.equal(headers['x-ratelimit-remaining'], '0', 'x-ratelimit-remaining: 0')
  const reset = Number(headers['x-ratelimit-reset'])
  t.ok(reset > 3000 && reset <= 3600, `x-ratelimit-reset: ${reset} s until the bucket is full again (10 tokens at 6 min each)`)
  // Counted at the destination: /metrics and the request lines (flag RL), by worker.
  const lines = await waitFor(() => {
    const l = requestLines('node1', mark).filter((x) => x.reporter === 'destination' && x.destination?.pod === 'limited')
    return l.length >= 41 ? l : null
  }, { timeoutMs: 15_000, what: 'the 41 request lines of the destination' })
  const refused = lines.filter((l) => l.status === 429)
  t.equal(refused.length, 31, '31 lines of 429')
  t.ok(refused.every((l) => l.response_flags === 'RL'), 'each flagged RL')
  const workers = [...new Set(lines.map((l) => l.worker))].sort()
  t.ok(workers.length > 1, `the requests were served by several workers of node1 (${workers.join(', ')})`)
  t.equal(counter(await metrics(lab, 'node1'), 'istio_requests_total', limited) - countedBefore, 31, 'istio_requests_total{response_code="429",response_flags="RL"} counts the 31')
})

t.test('connection-pool overflow: 24 at once against a 2 s backend limited to 3 connections + 2 pending: 5 served, the rest 503 UO; the backend holds 3 connections (4: a second worker\'s first); /debug/config shows the pool and the budget', async (t) => {
  await apply('pool.yaml')
  await inForce('node1', ['DestinationRule traffic/slow-pool', 'HTTPRoute traffic/slow'])
  const mark = nodeLog(lab, 'node1').length
  const overflow = { reporter: 'source', destination_workload: 'slow', response_code: '503', response_flags: 'UO' }
  const countedBefore = counter(await metrics(lab, 'node1'), 'istio_requests_total', overflow)
  const slowBackends = async (): Promise<any[]> => ((await agentGet(lab, 'node1', '/debug/config')).body.routes.workers as any[])
    .flatMap((w) => w.backends.filter((b: any) => b.backend === 'traffic/slow:80').map((b: any) => ({ worker: w.worker, ...b })))
  // /debug/config while the load runs: the pool's node-wide count of requests held.
  let done = false
  const seen: number[] = []
  // The retry budget's window is 10 s: read while the load runs, not after the pool's
  // idle connections closed (a loaded machine may be past the window by then).
  const budgetSeen: number[] = []
  const watching = (async () => {
    while (!done) {
      for (const b of await slowBackends().catch(() => [])) {
        if (b.pool !== null) seen.push(b.pool.requests)
        if (b.budget !== null && b.budget !== undefined) budgetSeen.push(b.budget.requests)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  const r = await load(svc('slow'), ['--requests', '24', '--rate', '1000', '--concurrency', '24'], 60_000).finally(() => { done = true })
  await watching
  t.comment(`statuses ${JSON.stringify(r.statuses)}, errors ${r.errors as number}; pool requests seen in /debug/config: max ${Math.max(0, ...seen)} of ${seen.length} reads`)
  const ok = r.statuses['200'] ?? 0
  const uo = r.statuses['503'] ?? 0
  t.equal(ok + uo, 24, 'every request answered 200 or 503')
  t.ok(ok >= 5, `${ok} served`)
  t.ok(uo > 0, `${uo} overflowed`)
  // HTTP/1.1: one request per connection; the 2 pending waited for one.
  const peak = (await stats('slow')).peak
  t.ok(peak >= 3 && peak <= 4, `the backend held ${peak} requests at once: maxConnections 3, or 4 when the second worker's pool opened its first connection at the limit (before: 5, a connection per admitted request)`)
  t.ok(seen.every((n) => n <= 5), '/debug/config never showed more than 5 held')
  // Counted at the source: the request lines (flag UO) and /metrics.
  const lines = await waitFor(() => {
    const l = requestLines('node1', mark).filter((x) => x.reporter === 'source' && x.authority?.startsWith('slow.') === true)
    return l.length >= 24 ? l : null
  }, { timeoutMs: 15_000, what: 'the 24 request lines of the source' })
  t.equal(lines.filter((l) => l.status === 503 && l.response_flags === 'UO').length, uo, 'each 503 flagged UO')
  t.ok(new Set(lines.map((l) => l.worker)).size > 1, 'the requests came through several workers of node1')
  t.equal(counter(await metrics(lab, 'node1'), 'istio_requests_total', overflow) - countedBefore, uo, 'istio_requests_total{response_code="503",response_flags="UO"} counts them')
  // The limits as /debug/config shows them afterwards: node-wide, the same in each worker;
  // the connections released once closed idle (idleTimeout 2 s).
  const after = await waitFor(async () => {
    const b = await slowBackends()
    return b.length > 0 && b.every((x) => x.pool?.connections === 0) ? b : null
  }, { timeoutMs: 15_000, intervalMs: 250, what: 'the idle connections closed and released' })
  t.ok(after.length > 0, `the backend is listed (workers ${after.map((b) => b.worker).join(', ')})`)
  for (const b of after) {
    t.match(b.pool, { requests: 0, connections: 0, limits: { maxConnections: 3, maxPendingRequests: 2 } }, `worker ${b.worker as number}: the pool, nothing held now`)
  }
  t.ok(Math.max(0, ...budgetSeen) >= 24, `while the load ran, the retry budget counted the node's requests in its window (max ${Math.max(0, ...budgetSeen)} of ${budgetSeen.length} reads)`)
})
