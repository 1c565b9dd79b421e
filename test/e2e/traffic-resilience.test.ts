import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { execInPod } from '../helpers/lab'
import { jsonFrom } from '../helpers/l7-lab'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'

// Retries with the node-wide budget, outlier detection and P2C over peak-EWMA on the lab
// (test/fixtures/apps/traffic-lab.yaml), the default number of workers. The servers
// (test/fixtures/apps/http-behave-server.js) count what they received (/stats, read
// inside the pod), so the extra load retries cause is measured where it lands.

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

async function stats (pod: string): Promise<{ requests: number, failed: number, canceled: number }> {
  const r = await execInPod(lab, 'traffic', pod, ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:8080/stats'])
  return JSON.parse(r.stdout)
}

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
  // The budget's window is 10 s: the previous test's requests have earned retries in it
  // still. Once they age out, this run's retries are its own 20 % plus the floor's 10/s.
  await new Promise((resolve) => setTimeout(resolve, 11_000))
  const before = await stats('flaky')
  const r = await load(svc('flaky', '/?fail=100'), ['--requests', '600', '--rate', '30', '--concurrency', '16'])
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
