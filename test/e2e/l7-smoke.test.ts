import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { execInPod } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'

// A smoke test of per-request proxying on a two-node lab (test/fixtures/apps/l7-lab.yaml,
// namespace l7 with ferry.dev/l7: enabled): keep-alive HTTP/1.1 requests from the client
// pod on node1 to the `http` Service reach its pods on both nodes on one connection (the
// source node's proxy balances each request), and a gRPC unary call crosses from node1 to
// the Node server on node2 (HTTP/2 end to end through the tunnel).

const lab = uniqueLabName('e2el7smoke')
const fixture = join(REPO, 'test/fixtures/apps/l7-lab.yaml')

t.setTimeout(300_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, fixture], { timeoutMs: 180_000 })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

t.test('keep-alive HTTP/1.1 requests on one connection reach the http pods on both nodes', async (t) => {
  const r = await execInPod(lab, 'l7', 'client', ['node', 'http-client.js', '--url', 'http://http.l7:8080/', '--requests', '4'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  t.equal(out.connections, 1, 'one client connection')
  t.same(out.statuses, { 200: 4 })
  t.same(Object.keys(out.servers).sort(), ['http-a', 'http-b'], 'both pods answered')
})

t.test('a gRPC unary call from node1 to the Node server on node2', async (t) => {
  const r = await execInPod(lab, 'l7', 'client', ['node', 'grpc-client.js', '--target', 'grpc-node.l7:50051', '--method', 'unary', '--message', 'smoke', '--trailer', 'x-t=1'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  t.equal(out.code, 0)
  t.equal(out.replies[0].message, 'smoke')
  t.equal(out.replies[0].server, 'grpc-node')
  t.equal(out.trailers['x-t'], '1', 'trailers preserved')
})

t.test('a server-first program behind a detected port greets at once and stays L4', async (t) => {
  const r = await execInPod(lab, 'l7', 'client', ['node', 'greeter-client.js', '--host', 'greeter.l7', '--port', '2525', '--lines', '2'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  t.equal(out.ok, true)
  t.match(out.banner, /^220 /)
  t.ok(out.bannerMs < 1000, `banner after ${String(out.bannerMs)} ms`)
  t.equal(out.echoes.length, 2)
})
