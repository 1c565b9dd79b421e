import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { execInPod, nodeLog } from '../helpers/lab'
import { jsonFrom } from '../helpers/l7-lab'
import { uniqueLabName } from '../helpers/names'
import { waitFor } from '../helpers/wait'

// Routes on the lab (test/fixtures/apps/traffic-lab.yaml), driven by real programs: the
// client pod's load generator (test/fixtures/apps/http-load.js) against servers that
// say who answered (test/fixtures/apps/http-behave-server.js), with the default number
// of workers. A canary HTTPRoute's split and its live change, fault injection from a
// VirtualService, a request timeout that cancels the backend's request. Then gRPC with
// @grpc/grpc-js (test/fixtures/apps/grpc-server.js, grpc-client.js): a GRPCRoute's
// service and method matches and weights, and a VirtualService's retries lent to it.

const lab = uniqueLabName('e2etrr')
const FIXTURE = join(REPO, 'test/fixtures/apps/traffic-lab.yaml')
const ROUTES = join(REPO, 'test/fixtures/traffic')
const LOAD = join(REPO, 'test/fixtures/apps/http-load.js')
const GRPC_CLIENT = join(REPO, 'test/fixtures/apps/grpc-client.js')
const svc = (name: string): string => `http://${name}.traffic.svc.cluster.local/`

t.setTimeout(420_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, FIXTURE], { timeoutMs: 180_000 })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 90_000 }) })

async function apply (file: string): Promise<void> {
  await ferryOk(['lab', 'apply', '--lab', lab, join(ROUTES, file)])
}

async function load (url: string, args: string[], timeoutMs = 120_000): Promise<any> {
  return await jsonFrom(lab, 'traffic', 'client', ['node', LOAD, '--url', url, ...args], timeoutMs)
}

interface GrpcSummary { calls: number, codes: Record<string, number>, servers: Record<string, number> }

/** `--repeat` sequential calls over one channel from the client pod to Service `name` port 50051, summed up. */
async function grpcCalls (name: string, args: string[]): Promise<GrpcSummary> {
  return await jsonFrom(lab, 'traffic', 'client', ['node', GRPC_CLIENT, '--target', `${name}.traffic.svc.cluster.local:50051`, '--summary', ...args], 60_000)
}

/** Applies a route file and waits until node1 (the client's node) has applied a configuration since. */
async function applyOnNode1 (file: string): Promise<void> {
  const before = nodeLog(lab, 'node1').filter((l) => l.msg === 'configuration applied').length
  await apply(file)
  await waitFor(() => nodeLog(lab, 'node1').filter((l) => l.msg === 'configuration applied').length > before, { timeoutMs: 30_000, what: `${file} in force on node1` })
}

/** v1's and v2's shares (in %) of the answers. */
function split (servers: Record<string, number>): { v1: number, v2: number, total: number } {
  let v1 = 0
  let v2 = 0
  for (const [pod, n] of Object.entries(servers)) {
    if (pod.startsWith('web-v1')) v1 += n
    else if (pod.startsWith('web-v2')) v2 += n
  }
  const total = v1 + v2
  return { v1: (100 * v1) / total, v2: (100 * v2) / total, total }
}

t.test('a canary HTTPRoute splits 90/10 within ±3 points over 2,000 requests, over pods of both nodes', async (t) => {
  await apply('canary.yaml')
  // In force at the source once web-v2 answers only a share (through L4 the Service web balances connections over 3 pods).
  await waitFor(async () => (await execInPod(lab, 'traffic', 'client', ['curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', svc('web')])).stdout === '200', { timeoutMs: 30_000, what: 'web answering' })
  await waitFor(() => nodeLog(lab, 'node1').some((l) => l.msg === 'configuration applied' && l.generation >= 1), { timeoutMs: 30_000, what: 'the canary route in force on node1' })
  const r = await load(svc('web'), ['--requests', '2000', '--rate', '400', '--concurrency', '16'])
  t.equal(r.errors, 0, 'no failed request')
  t.same(Object.keys(r.statuses), ['200'])
  const s = split(r.servers)
  t.equal(s.total, 2000)
  t.ok(Math.abs(s.v1 - 90) <= 3, `v1 ${s.v1.toFixed(1)} % (90 ± 3)`)
  t.ok(Math.abs(s.v2 - 10) <= 3, `v2 ${s.v2.toFixed(1)} % (10 ± 3)`)
  t.ok((r.servers['web-v1-a'] ?? 0) > 0 && (r.servers['web-v1-b'] ?? 0) > 0, 'v1 balanced over its pods on both nodes')
})

t.test('changing the weights live moves the traffic within 100 ms of the new configuration, with no failed request', async (t) => {
  const before = nodeLog(lab, 'node1').filter((l) => l.msg === 'configuration applied').length
  const running = load(svc('web'), ['--requests', '1500', '--rate', '150', '--concurrency', '16', '--samples'])
  await new Promise((resolve) => setTimeout(resolve, 3000))
  // The lab keeps a configuration file by its base name: this one replaces canary.yaml.
  await apply('promoted/canary.yaml')
  const r = await running
  t.equal(r.errors, 0, 'no failed request')
  t.same(Object.keys(r.statuses), ['200'], 'every answer 200')
  const applied = nodeLog(lab, 'node1').filter((l) => l.msg === 'configuration applied')
  t.ok(applied.length > before, 'node1 applied the new weights')
  const at = applied[applied.length - 1].time as number
  const samples = r.samples as Array<[number, number, string | null, number]>
  const lastV1 = Math.max(...samples.filter((s) => s[2]?.startsWith('web-v1') === true).map((s) => s[3]))
  t.comment(`last request to v1 started ${lastV1 - at} ms after node1 applied the promotion`)
  t.ok(lastV1 - at <= 100, 'no request starting 100 ms after the change goes to v1')
  t.ok(samples.filter((s) => s[3] > at + 100).length > 100, 'traffic went on after the change')
})

t.test('fault injection aborts and delays the configured percentages (±3 points over 2,000 requests)', async (t) => {
  await apply('fault.yaml')
  await waitFor(async () => {
    const r = await load(svc('web-v2'), ['--requests', '50', '--rate', '200'])
    return (r.statuses['503'] ?? 0) > 0
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'the fault in force' })
  const r = await load(svc('web-v2'), ['--requests', '2000', '--rate', '400', '--concurrency', '64', '--samples'])
  const samples = r.samples as Array<[number, number, string | null, number]>
  const aborted = samples.filter((s) => s[0] === 503).length
  const delayed = samples.filter((s) => s[0] === 200 && s[1] >= 480).length
  const answered = samples.filter((s) => s[0] === 200).length
  t.equal(r.errors, 0)
  t.ok(Math.abs((100 * aborted) / 2000 - 20) <= 3, `aborted ${(100 * aborted / 2000).toFixed(1)} % (20 ± 3)`)
  // Delays apply to the requests not aborted (Envoy's fault filter delays first, then aborts: either way ~30 % of all).
  t.ok(Math.abs((100 * delayed) / answered - 30) <= 3 + 2, `delayed ${(100 * delayed / answered).toFixed(1)} % of the answered (30 ± 3, and a few slow by chance)`)
})

t.test('a 500 ms request timeout answers 504 after 0.5 s and the backend sees its request canceled', async (t) => {
  await apply('timeout.yaml')
  const statsBefore = JSON.parse((await execInPod(lab, 'traffic', 'slow', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:8080/stats'])).stdout)
  await waitFor(async () => (await execInPod(lab, 'traffic', 'client', ['curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', svc('slow')])).stdout === '504', { timeoutMs: 30_000, intervalMs: 500, what: 'the timeout in force' })
  const r = await load(svc('slow'), ['--requests', '10', '--samples'])
  const samples = r.samples as Array<[number, number, string | null, number]>
  t.same(samples.map((s) => s[0]), samples.map(() => 504), 'every request 504')
  for (const s of samples) t.ok(s[1] >= 480 && s[1] < 900, `answered after ${s[1]} ms (0.5 s)`)
  const after = await waitFor(async () => {
    const st = JSON.parse((await execInPod(lab, 'traffic', 'slow', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:8080/stats'])).stdout)
    return st.canceled - statsBefore.canceled >= 11 ? st : null
  }, { timeoutMs: 10_000, intervalMs: 250, what: 'the backend counting its canceled requests' })
  t.equal(after.requests - statsBefore.requests, after.canceled - statsBefore.canceled, 'every request the backend got was canceled (none answered)')
})

t.test('a GRPCRoute routes gRPC calls by service and by method: Probe to v2, Echo\'s ServerStream to v1', async (t) => {
  await applyOnNode1('grpc-routes.yaml')
  const probe = await grpcCalls('grpc', ['--service', 'probe', '--method', 'unary', '--repeat', '40'])
  t.same(probe.codes, { 0: 40 }, 'every Probe call OK')
  t.same(probe.servers, { 'grpc-v2-a': 40 }, 'service ferry.fixtures.Probe: grpc-v2 only')
  const stream = await grpcCalls('grpc', ['--method', 'server-stream', '--repeat', '40'])
  t.same(stream.codes, { 0: 40 }, 'every ServerStream call OK')
  t.same(stream.servers, { 'grpc-v1-a': 40 }, 'method ferry.fixtures.Echo/ServerStream: grpc-v1 only')
})

t.test('a GRPCRoute\'s weighted backendRefs split Echo\'s unary calls 80/20 within ±5 points over 500 calls', async (t) => {
  const r = await grpcCalls('grpc', ['--method', 'unary', '--repeat', '500'])
  t.same(r.codes, { 0: 500 }, 'every call OK')
  const v1 = r.servers['grpc-v1-a'] ?? 0
  const v2 = r.servers['grpc-v2-a'] ?? 0
  t.equal(v1 + v2, 500, 'every call answered by v1 or v2')
  t.ok(Math.abs((100 * v1) / 500 - 80) <= 5, `v1 ${(100 * v1 / 500).toFixed(1)} % (80 ± 5)`)
})

t.test('a VirtualService\'s retryOn unavailable is lent to the GRPCRoute: a backend failing 30 % with UNAVAILABLE answers ≥ 99 % OK', async (t) => {
  // grpc-routes.yaml (previous test) routes grpc-flaky with a GRPCRoute, which retries nothing.
  const without = await grpcCalls('grpc-flaky', ['--method', 'unary', '--repeat', '300'])
  const failed = without.codes['14'] ?? 0
  t.same(Object.keys(without.codes).sort(), ['0', '14'], 'OK or UNAVAILABLE')
  t.ok(Math.abs((100 * failed) / 300 - 30) <= 8, `without the VirtualService ${(100 * failed / 300).toFixed(1)} % fail (the backend's 30 ± 8)`)

  await applyOnNode1('grpc-retries.yaml')
  // In force once a batch of 20 all succeeds (without retries: 0.7^20, under 0.1 %).
  await waitFor(async () => (await grpcCalls('grpc-flaky', ['--method', 'unary', '--repeat', '20'])).codes['0'] === 20, { timeoutMs: 30_000, intervalMs: 500, what: 'the lent retries in force' })
  // 200 calls need ~0.43 retries each (86 ± 11): well within the node's budget over its
  // 10 s window (20 % of the ~500 requests here + 100), so every failure counts the retries.
  const r = await grpcCalls('grpc-flaky', ['--method', 'unary', '--repeat', '200'])
  const ok = r.codes['0'] ?? 0
  t.ok(ok >= 198, `with the VirtualService's retries ${ok} of 200 OK (≥ 99 %; 0.3^6 ≈ 0.07 % fail all six tries)`)
  t.same(Object.keys(r.servers), ['grpc-flaky'], 'every answer from grpc-flaky: the VirtualService\'s destination (grpc-v1) stays overridden')

  const check = JSON.parse(await ferryOk(['route', 'check', '--lab', lab, '--node', 'node1', '--from', 'traffic/client', '--to', 'traffic/grpc-flaky:50051',
    '--path', '/ferry.fixtures.Echo/Unary', '--method', 'POST', '--header', 'content-type=application/grpc', '--json']))
  t.match(check, { kind: 'GRPCRoute', rule: 'GRPCRoute traffic/grpc-flaky rule 0', backends: [{ backend: 'traffic/grpc-flaky:50051' }] })
  t.match(check.retry, /^5 retries on grpc 14 \(from VirtualService traffic\/grpc-flaky-retries rule 0, lent to the GRPCRoute/, `route check: ${String(check.retry)}`)
})
